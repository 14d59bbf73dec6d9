// A course's analytics for its instructors (GET /api/v1/dashboard/analytics/course/{id}):
// enrolments, active learners, the completion funnel, the learners whose claims were clamped, and
// each video's audience retention with its steepest drop-offs. Live while a class watches: the page joins the course's room
// (/api/v1/ws/progress/{id}) as an instructor, and every `progress` or `job` frame refetches the
// analytics, at most once a second however many frames arrive; the charts redraw in place.
import { api, signedIn } from "/static/session.js";
import { liveSocket } from "/static/socket.js";
import { renderNav } from "/static/nav.js";
import { throttled } from "/static/throttle.js";
import { funnelChart, retentionChart } from "/static/charts.js";
import { clock, duration, percent } from "/static/format.js";

const REFETCH_MS = 1000;
const courseId = Number(location.pathname.split("/").filter(Boolean).at(-2));
const deviceId = "analytics-" + Math.random().toString(36).slice(2, 10);
const $ = (id) => document.getElementById(id);

let funnel = null;
const videos = new Map();  // content id -> {article, chart}

function notice(text) { $("notice").textContent = text; }

function status(state) {
  $("status").dataset.state = state;
  $("status").textContent = state;
}

async function load() {
  let analytics;
  try {
    analytics = await api(`/api/v1/dashboard/analytics/course/${courseId}`);
  } catch (error) {
    return notice(error.message);
  }
  notice("");
  show(analytics);
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function show(a) {
  $("title").textContent = `Analytics: ${a.title}`;
  document.title = `Analytics: ${a.title}`;
  $("enrolled").textContent = a.enrolled;
  $("active-day").textContent = a.active_learners.day;
  $("active-week").textContent = a.active_learners.week;
  $("active-month").textContent = a.active_learners.month;
  $("coverage").textContent = a.coverage == null ? "—" : percent(a.coverage);
  if (funnel) funnel.update(a.funnel);
  else funnel = funnelChart($("funnel-chart"), a.funnel);
  showVideos(a.videos);
  showClamped(a.clamped ?? []);
}

// Learners whose heartbeats claimed more playback than the wall clock allows at the course's
// maximum rate (lms/domain/progress.py `credit`): the seconds clamped, most first.
function showClamped(list) {
  const items = list.map((learner) => {
    const li = document.createElement("li");
    li.dataset.user = learner.user_id;
    li.textContent = `${learner.name}: ${duration(learner.clamped_seconds)} claimed beyond the rate`;
    return li;
  });
  if (!items.length) {
    items.push(document.createElement("li"));
    items[0].className = "empty";
    items[0].textContent = "Nobody.";
  }
  $("clamped").replaceChildren(...items);
}

function showVideos(list) {
  const shown = new Set(list.map((v) => v.content_id));
  for (const [id, video] of videos) {
    if (!shown.has(id)) { video.article.remove(); videos.delete(id); }
  }
  if (!list.length) $("videos").replaceChildren(emptyNote("No video with a known duration yet."));
  else $("videos").querySelector(".empty")?.remove();
  for (const v of list) {
    let video = videos.get(v.content_id);
    if (!video) {
      video = videoArticle(v);
      videos.set(v.content_id, video);
    } else {
      video.chart.update(v);
    }
    $("videos").append(video.article);  // in course order
    video.article.querySelector("h3").textContent = `${v.title} (${clock(v.duration)})`;
    video.article.querySelector(".viewers").textContent = v.viewers === 1 ? "1 viewer" : `${v.viewers} viewers`;
    video.article.dataset.viewers = v.viewers;
    video.article.querySelector(".drops").replaceChildren(...v.drop_offs.map(dropItem));
  }
}

function videoArticle(v) {
  const article = document.createElement("article");
  article.dataset.content = v.content_id;
  const heading = document.createElement("h3");
  const viewers = document.createElement("span");
  viewers.className = "aside viewers";
  const plot = document.createElement("div");
  plot.className = "chart";
  const drops = document.createElement("ol");
  drops.className = "drops";
  article.append(heading, viewers, plot, drops);
  $("videos").append(article);  // laid out before the chart measures its width
  return { article, chart: retentionChart(plot, v) };
}

function dropItem(drop) {
  const li = document.createElement("li");
  li.textContent = `at ${clock(drop.at)}: -${percent(drop.drop)} (${clock(drop.start)} to ${clock(drop.end)})`;
  return li;
}

function emptyNote(text) {
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = text;
  return p;
}

const refetch = throttled(load, REFETCH_MS);
let welcomed = false;
let socket = null;

function onFrame(frame) {
  if (frame.type === "welcome") {
    if (frame.role !== "instructor") notice("Only the course's instructors follow it live.");
    socket.send({ type: "subscribe" });
    if (welcomed) refetch();  // welcomed again after a drop: catch up
    welcomed = true;
  } else if (frame.type === "progress" || frame.type === "job" || frame.type === "resync") {
    refetch();  // resync: this node may have missed events of others (its link was down)
  } else if (frame.type === "error") {
    notice(frame.message);
  }
}

async function start() {
  renderNav(await signedIn());
  $("live-link").href = `/live/${courseId}`;
  await load();
  socket = liveSocket(`/api/v1/ws/progress/${courseId}`, { onFrame, onState: status, deviceId });
}

start();
