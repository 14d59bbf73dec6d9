// The transcode jobs page. The table follows the admin's live socket (/api/v1/ws/notifications,
// the protocol of proto/frames.py): every `job` frame refreshes it at once. Job frames reach only
// a job's uploader (and its course's room), so a poll stays as the fallback for other people's
// jobs, for the workers list (heartbeats are not events), and while the socket is down.
import { api, signedIn } from "/static/session.js";
import { liveSocket } from "/static/socket.js";
import { renderNav } from "/static/nav.js";
import { throttled } from "/static/throttle.js";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

// A burst of frames makes one more load after the one in flight, not one each.
const refresh = throttled(load, 0);

async function load() {
  try {
    const [jobs, workers] = await Promise.all([api("/api/v1/jobs?limit=100"), api("/api/v1/jobs/workers")]);
    renderJobs(jobs);
    renderWorkers(workers);
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("status").textContent = err.message;
  }
}

function live(state) {
  $("live").textContent = state;
  $("live").dataset.state = state;
}

function onFrame(frame) {
  if (frame.type === "welcome" || frame.type === "job") refresh();  // on welcome: catch up
  else if (frame.type === "error") $("status").textContent = frame.message;
}

// --- rendering -----------------------------------------------------------------------------------

function cell(row, text, name) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (name) td.className = name;
  return td;
}

function action(row, job, verb) {
  const button = document.createElement("button");
  button.textContent = verb;
  button.onclick = async () => {
    try { await api(`/api/v1/jobs/${job.id}/${verb}`, { method: "POST" }); refresh(); }
    catch (err) { $("status").textContent = err.message; }
  };
  row.lastChild.appendChild(button);
}

function renderJobs(jobs) {
  const body = $("jobs");
  body.replaceChildren();
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.job = job.id;
    row.dataset.state = job.state;
    cell(row, job.id, "id");
    cell(row, `${job.course_id} / ${job.content_id}`, "content");
    cell(row, job.status, "status");
    const percent = cell(row, `${Math.round(job.progress * 100)}%`, "progress");
    const bar = document.createElement("progress");
    bar.max = 1; bar.value = job.progress;
    percent.prepend(bar);
    cell(row, job.eta_seconds == null ? "" : `${Math.round(job.eta_seconds)} s`, "eta");
    cell(row, `${job.attempts} / ${job.max_attempts}`, "attempts");
    cell(row, job.worker_id, "worker");
    cell(row, job.heartbeat_at && new Date(job.heartbeat_at).toLocaleTimeString(), "heartbeat");
    cell(row, job.error, "error");
    row.insertCell();
    if (job.state === "queued" || job.state === "running") action(row, job, "cancel");
    if (job.state === "failed" || job.state === "cancelled") action(row, job, "retry");
  }
}

function renderWorkers(workers) {
  const body = $("workers");
  body.replaceChildren();
  for (const worker of workers) {
    const row = body.insertRow();
    row.className = worker.alive ? "" : "dead";
    cell(row, worker.id);
    cell(row, worker.kind);
    cell(row, `${worker.host} / ${worker.pid}`);
    cell(row, worker.job_id);
    cell(row, new Date(worker.heartbeat_at).toLocaleTimeString());
  }
}

// --- start ---------------------------------------------------------------------------------------

async function start() {
  renderNav(await signedIn());
  refresh();
  liveSocket("/api/v1/ws/notifications", { onFrame, onState: live });
  setInterval(refresh, POLL_MS);
}

start();
