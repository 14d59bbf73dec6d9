// The platform at a glance for admins (GET /api/v1/dashboard/admin): users and DAU/WAU/MAU,
// enrolments, completions and watch time, the transcode queue with its recent failures, the
// top courses. It follows the admin's notifications socket: `job` frames (their uploads' jobs)
// refetch it, at most once a second; a slow poll covers everyone else's activity.
import { api, signedIn } from "/static/session.js";
import { liveSocket } from "/static/socket.js";
import { renderNav } from "/static/nav.js";
import { throttled } from "/static/throttle.js";
import { duration } from "/static/format.js";

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
    show(await api("/api/v1/dashboard/admin"));
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
