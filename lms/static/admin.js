// The platform at a glance for admins (GET /api/v1/dashboard/admin): users and DAU/WAU/MAU,
// enrolments, completions and watch time, the transcode queue with its recent failures, the
// top courses; and the figures of the node that answers (GET /api/v1/monitoring/stats, its
// /metrics as JSON). It follows the admin's notifications socket: `job` frames (their uploads'
// jobs) refetch it, at most once a second; a slow poll covers everyone else's activity.
import { api, signedIn } from "/static/session.js";
import { liveSocket } from "/static/socket.js";
import { renderNav } from "/static/nav.js";
import { throttled } from "/static/throttle.js";
import { duration, percent } from "/static/format.js";

const REFETCH_MS = 1000;
const POLL_MS = 15_000;
const $ = (id) => document.getElementById(id);

function notice(text) { $("notice").textContent = text; }

function status(state) {
  $("status").dataset.state = state;
  $("status").textContent = state;
}

async function load() {
  try {
    // The node's figures are extra: without them (a node that has no such route) the page
    // shows the platform's all the same.
    const [platform, node] = await Promise.all([
      api("/api/v1/dashboard/admin"),
      api("/api/v1/monitoring/stats").catch(() => null),
    ]);
    show(platform);
    if (node) showNode(node);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    notice("");
  } catch (error) {
    notice(error.message);
  }
}

function show(d) {
  $("users").textContent = d.users;
  $("dau").textContent = d.active_users.day;
  $("wau").textContent = d.active_users.week;
  $("mau").textContent = d.active_users.month;
  $("enrolments").textContent = d.enrolments;
  $("completions").textContent = d.completions;
  $("watched").textContent = duration(d.watched_seconds);
  $("roles").textContent = Object.entries(d.users_by_role).map(([role, n]) => `${n} ${role}${n === 1 ? "" : "s"}`).join(" · ");
  $("queue").replaceChildren(...Object.entries(d.transcode_queue).map(([state, n]) => figure(state, n)));
  $("failures").replaceChildren(...d.recent_failures.map(failureRow));
  $("top-courses").replaceChildren(...d.top_courses.map(courseRow));
}

// The node's figures, from its metric families; a family the node does not have (an older
// node, a figure turned off) leaves its figure out rather than showing a zero it never counted.
function nodeFigures(stats) {
  const families = new Map(stats.metrics.map((family) => [family.name, family]));
  // A family's own samples, by one label's value (a histogram's or counter's extra samples,
  // such as `_created`, carry other names).
  const byLabel = (name, label) => {
    const totals = new Map();
    for (const sample of families.get(name).samples) {
      if (sample.name !== name) continue;
      const key = label ? sample.labels[label] : "";
      totals.set(key, (totals.get(key) || 0) + sample.value);
    }
    return totals;
  };
  const total = (name) => [...byLabel(name).values()].reduce((sum, value) => sum + value, 0);
  const count = (value) => String(Math.round(value));
  const has = (...names) => names.every((name) => families.has(name));
  const figures = [];
  const add = (key, label, value) => figures.push({ key, label, value });
  if (has("lms_http_requests_total")) add("requests", "Requests served", count(total("lms_http_requests_total")));
  if (has("lms_websocket_connections")) add("websockets", "Open WebSockets", count(total("lms_websocket_connections")));
  if (has("lms_live_rooms")) add("rooms", "Live rooms", count(total("lms_live_rooms")));
  if (has("lms_live_sessions")) add("sessions", "Live sessions", count(total("lms_live_sessions")));
  if (has("lms_progress_updates_total")) add("progress", "Progress updates", count(total("lms_progress_updates_total")));
  if (has("lms_transcode_jobs")) {
    // The states that hold jobs (the platform's queue below lists every state).
    const states = [...byLabel("lms_transcode_jobs", "state")].filter(([, n]) => n > 0);
    add("transcode", "Transcode jobs", states.map(([state, n]) => `${state} ${count(n)}`).join(" · ") || "0");
  }
  if (has("lms_cache_hits_total", "lms_cache_misses_total")) {
    const hits = byLabel("lms_cache_hits_total", "tier");
    const misses = byLabel("lms_cache_misses_total", "tier");
    const tiers = [...hits].map(([tier, n]) => {
      const asked = n + (misses.get(tier) || 0);
      return `${tier} ${asked ? percent(n / asked) : "—"}`;
    });
    add("cache", "Cache hit ratio", tiers.join(" · ") || "—");
  }
  const mail = ["sent", "retried", "dead"].filter((outcome) => has(`lms_mail_${outcome}_total`));
  if (mail.length) add("mail", "Mail", mail.map((outcome) => `${outcome} ${count(total(`lms_mail_${outcome}_total`))}`).join(" · "));
  if (has("lms_db_pool_connections", "lms_db_pool_max")) {
    const inUse = byLabel("lms_db_pool_connections", "state").get("in_use") || 0;
    add("db", "Database connections in use", `${count(inUse)} / ${count(total("lms_db_pool_max"))}`);
  }
  if (has("lms_actor_restarts_total")) add("restarts", "Actor restarts", count(total("lms_actor_restarts_total")));
  return figures;
}

function showNode(stats) {
  $("node-id").textContent = stats.node_id;
  $("node-figures").replaceChildren(...nodeFigures(stats).map(({ key, label, value }) => {
    const div = figure(label, value);
    div.dataset.figure = key;
    return div;
  }));
  $("node").hidden = false;
}

function figure(label, value) {
  const div = document.createElement("div");
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = label;
  dd.textContent = value;
  div.dataset.state = label;
  div.append(dt, dd);
  return div;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const [content, className] of cells) {
    const td = document.createElement("td");
    td.append(content);
    if (className) td.className = className;
    tr.append(td);
  }
  return tr;
}

function failureRow(job) {
  return row([[String(job.id)], [`${job.course_id} / ${job.content_id}`], [`${job.attempts} / ${job.max_attempts}`], [job.error || "", "error"]]);
}

function courseRow(course) {
  const a = document.createElement("a");
  a.href = `/courses/${course.course_id}/analytics`;
  a.textContent = course.title;
  const tr = row([[a], [String(course.enrolled), "num"], [String(course.completions), "num"], [duration(course.watched_seconds), "num"]]);
  tr.dataset.course = course.course_id;
  return tr;
}

const refetch = throttled(load, REFETCH_MS);

async function start() {
  renderNav(await signedIn());
  await load();
  liveSocket("/api/v1/ws/notifications", {
    onFrame: (frame) => { if (frame.type === "job") refetch(); },
    onState: status,
  });
  setInterval(refetch, POLL_MS);
}

start();
