// The instructor's live room: who is online, what each learner watches, their progress.
// Speaks the protocol of proto/frames.py over /api/v1/ws/progress/{course_id}: auth, then
// subscribe (with the last (epoch, seq) seen when reconnecting), then room events.
import { api, signedIn } from "/static/session.js";
import { liveSocket } from "/static/socket.js";
import { renderNav } from "/static/nav.js";
import { clock } from "/static/format.js";

const courseId = Number(location.pathname.split("/").filter(Boolean).pop());
const deviceId = "live-page-" + Math.random().toString(36).slice(2, 10);
const $ = (id) => document.getElementById(id);

const room = {
  members: new Map(),   // conn -> {user_id, name, role, content_id}
  progress: new Map(),  // user_id -> {content_id, position, coverage, completed, duration}
  names: new Map(),     // user_id -> name, for learners heard from but not online
  contents: new Map(),  // content_id -> title
  position: null,       // {epoch, seq} of the last event applied
};

$("announce").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = new FormData(event.target).get("text").trim();
  if (text && socket?.send({ type: "announcement", text })) event.target.reset();
});

function notice(text) { $("notice").textContent = text; }

function status(state) {
  $("status").dataset.state = state;
  $("status").textContent = state;
}

// --- the socket ------------------------------------------------------------------------------

let socket = null;  // from start()

function handle(frame) {
  switch (frame.type) {
    case "welcome":
      $("announce").hidden = frame.role !== "instructor";
      if (frame.role !== "instructor") notice("Only the course's instructors see learners' progress.");
      socket.send({ type: "subscribe", since: room.position });
      return;
    case "resync": return;  // a snapshot follows
    case "snapshot":
      room.members = new Map(frame.online.map((m) => [m.conn, m]));
      room.progress = new Map(frame.learners.map((p) => [p.user_id, p]));
      break;
    case "presence":
      if (frame.event === "leave") room.members.delete(frame.member.conn);
      else room.members.set(frame.member.conn, frame.member);
      room.names.set(frame.member.user_id, frame.member.name);
      break;
    case "progress": room.progress.set(frame.user_id, frame); break;
    case "announcement": log(`📣 ${frame.author_name}: ${frame.text}`); break;
    case "job": log(`🎞 job ${frame.job.job_id} (content ${frame.job.content_id}): ${frame.job.status} ${Math.round(frame.job.progress * 100)}%`); break;
    case "error": notice(frame.message); return;
    default: return;
  }
  if (frame.epoch) room.position = { epoch: frame.epoch, seq: frame.seq };
  scheduleRender();
}

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("log").prepend(item);
}

// --- rendering, at most once per frame -------------------------------------------------------

let renderQueued = false;
function scheduleRender() {
  if (!renderQueued) { renderQueued = true; requestAnimationFrame(render); }
}

function render() {
  renderQueued = false;
  const learners = new Map();  // user_id -> {name, online, watching}
  for (const m of room.members.values()) {
    if (m.role !== "learner") continue;
    const row = learners.get(m.user_id) || { name: m.name, online: 0, watching: new Set() };
    row.online += 1;
    if (m.content_id != null) row.watching.add(m.content_id);
    learners.set(m.user_id, row);
  }
  for (const userId of room.progress.keys()) {
    if (!learners.has(userId)) learners.set(userId, { name: room.names.get(userId) || `learner ${userId}`, online: 0, watching: new Set() });
  }
  const rows = [...learners.entries()].sort((a, b) => b[1].online - a[1].online || a[1].name.localeCompare(b[1].name));
  $("learners").replaceChildren(...rows.map(([userId, row]) => learnerRow(userId, row)));
  const online = [...learners.values()].filter((row) => row.online).length;
  $("count").textContent = `${online} online`;
}

function learnerRow(userId, row) {
  const p = room.progress.get(userId);
  const tr = document.createElement("tr");
  tr.dataset.user = userId;
  if (p?.completed) tr.classList.add("done");
  const watching = p ? new Set([...row.watching, p.content_id]) : row.watching;
  const coverage = p ? Math.round(p.coverage * 100) : 0;
  tr.append(
    cell(row.name + (row.online > 1 ? ` (${row.online} devices)` : ""), row.online ? "online" : "offline"),
    cell([...watching].map((id) => room.contents.get(id) || `content ${id}`).join(", ") || "—", "watching"),
    cell(p ? clock(p.position) : "—", "position"),
    bar(coverage),
    cell(`${coverage}%`, "coverage"),
  );
  return tr;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  td.className = className;
  return td;
}

function bar(percent) {
  const td = document.createElement("td");
  const outer = document.createElement("div");
  const inner = document.createElement("span");
  outer.className = "bar";
  inner.style.width = `${percent}%`;
  outer.append(inner);
  td.append(outer);
  return td;
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  const me = await signedIn();
  renderNav(me);
  try {
    const course = await api(`/api/v1/courses/${courseId}`);
    $("title").textContent = `Live: ${course.title}`;
    document.title = `Live: ${course.title}`;
    const contents = await api(`/api/v1/courses/${courseId}/contents`);
    room.contents = new Map(contents.map((c) => [c.id, c.title]));
  } catch (error) {
    notice(error.message);
  }
  socket = liveSocket(`/api/v1/ws/progress/${courseId}`, { onFrame: handle, onState: status, deviceId });
}

start();
