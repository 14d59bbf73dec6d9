// The learner's dashboard: figures and streaks (GET /api/v1/dashboard/stats), what to resume in
// each course, recent activity, and watch time over time
// (GET /api/v1/dashboard/analytics/progress). It follows the learner's own notifications socket:
// progress pushed from their other devices (a video playing in another tab) refetches both, at
// most once a second however many frames arrive.
import { api, signedIn } from "/static/session.js";
import { liveSocket } from "/static/socket.js";
import { renderNav } from "/static/nav.js";
import { throttled } from "/static/throttle.js";
import { watchTimeChart } from "/static/charts.js";
import { duration } from "/static/format.js";

const REFETCH_MS = 1000;
const RANGE_DAYS = { day: 30, week: 26 * 7 };
const $ = (id) => document.getElementById(id);
// Progress is pushed to every device of the learner but the one that sent it, by device id: a
// page without one would miss heartbeats sent without one (POST /api/v1/progress).
const deviceId = "dashboard-" + Math.random().toString(36).slice(2, 10);

let chart = null;

function notice(text) { $("notice").textContent = text; }

function status(state) {
  $("status").dataset.state = state;
  $("status").textContent = state;
}

function isoDate(date) { return date.toISOString().slice(0, 10); }

async function load() {
  const bucket = $("bucket").value;
  // The server counts days in the learner's zone; "to" is left to it (today, there).
  const from = isoDate(new Date(Date.now() - RANGE_DAYS[bucket] * 86_400_000));
  try {
    const [stats, progress] = await Promise.all([
      api("/api/v1/dashboard/stats"),
      api(`/api/v1/dashboard/analytics/progress?from=${from}&bucket=${bucket}`),
    ]);
    showStats(stats);
    showProgress(progress);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    notice("");
  } catch (error) {
    notice(error.message);
  }
}

function showStats(stats) {
  $("in-progress").textContent = stats.courses_in_progress;
  $("completed").textContent = stats.courses_completed;
  $("not-started").textContent = stats.courses_not_started;
  $("watched").textContent = duration(stats.watched_seconds);
  $("streak").textContent = days(stats.current_streak);
  $("longest").textContent = days(stats.longest_streak);
  $("resume").replaceChildren(...(stats.resume.length ? stats.resume.map(resumeItem) : [item("Nothing to resume: enrol in a course to start.")]));
  $("activity").replaceChildren(...(stats.recent_activity.length ? stats.recent_activity.map(activityItem) : [item("No activity yet.")]));
}

function days(n) { return n === 1 ? "1 day" : `${n} days`; }

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

function resumeItem(point) {
  const li = item(`${point.course_title} · ${Math.round(point.percent)}% · `);
  li.dataset.course = point.course_id;
  if (point.content_id == null) {
    li.append("completed");
  } else if (point.kind === "video") {
    const a = document.createElement("a");
    a.href = `/watch/${point.content_id}`;  // the player resumes at the saved position itself
    a.textContent = `resume ${point.content_title}`;
    li.append(a);
  } else {
    li.append(`next: ${point.content_title}`);
  }
  return li;
}

const VERBS = { started: "Started", completed: "Completed", course_finished: "Finished the course" };

function activityItem(activity) {
  const what = activity.content_title ? `${activity.content_title} (${activity.course_title})` : activity.course_title;
  return item(`${new Date(activity.at).toLocaleString()} · ${VERBS[activity.kind] || activity.kind}: ${what}`);
}

function showProgress(progress) {
  if (chart) chart.update(progress.buckets);
  else chart = watchTimeChart($("watch-chart"), progress.buckets);
}

const refetch = throttled(load, REFETCH_MS);

let welcomed = false;

function onFrame(frame) {
  if (frame.type === "progress") refetch();
  // Welcomed again after a drop: catch up on what happened meanwhile.
  else if (frame.type === "welcome" && welcomed) refetch();
  if (frame.type === "welcome") welcomed = true;
}

async function start() {
  renderNav(await signedIn());
  $("bucket").addEventListener("change", refetch);
  await load();
  liveSocket("/api/v1/ws/notifications", { onFrame, onState: status, deviceId });
}

start();
