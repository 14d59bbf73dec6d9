// The player page: plays a video content from its manifest
// (GET /api/v1/stream/video/{id}/manifest, whose media URLs carry their own signature), with
// native HLS where the browser has it and hls.js otherwise (`?engine=hlsjs` or `?engine=native`
// forces one). While the video transcodes it says how far the job is, polling the manifest, and
// starts as soon as a rendition is playable. It resumes where the viewer left off, shows the
// storyboard over the scrub bar, and reports progress over the course's progress socket
// (proto/frames.py): `progress` heartbeats with the segments played since the last one.
import { api, signedIn } from "/static/session.js";
import { liveSocket } from "/static/socket.js";
import { renderNav } from "/static/nav.js";
import { clock } from "/static/format.js";

const contentId = Number(location.pathname.split("/").filter(Boolean).pop());
const forcedEngine = new URLSearchParams(location.search).get("engine");
const deviceId = "player-" + Math.random().toString(36).slice(2, 10);
const $ = (id) => document.getElementById(id);
const video = $("video");

const RUNNING = new Set(["queued", "probing", "transcoding"]);
const POLL_MS = 1000;            // the manifest, while the job runs
const HEARTBEAT_MS = 5000;       // while playing; also on pause, seek, end and leaving the page
const MAX_SEGMENTS = 64;         // per heartbeat: proto/progress.py MAX_SEGMENTS_PER_UPDATE
const END_SLACK = 3;             // a resume point this close to the end starts over
const SIGNED = /\/media\/[a-z0-9]+\/[A-Za-z0-9_-]+\/[0-9]+\//;  // lms/domain/media_urls.py

let manifest = null;

function notice(text) { $("notice").textContent = text; }

function status(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text || state;
}

// --- the manifest: fetched at start, and followed while the video transcodes ---------------------

const manifestPath = `/api/v1/stream/video/${contentId}/manifest`;

async function start() {
  renderNav(await signedIn());
  try {
    manifest = await api(manifestPath);
  } catch (error) {
    status("failed", "unavailable");
    return notice(error.message);
  }
  $("player").hidden = false;
  showJob();
  if (manifest.hls_master) play(startPosition());
  if (manifest.storyboard) loadStoryboard(manifest.storyboard);
  if (manifest.course_id != null) {
    connect(manifest.course_id);
    showTitle(manifest.course_id);
  }
  if (RUNNING.has(manifest.status)) follow();
}

async function showTitle(courseId) {
  try {
    const content = await api(`/api/v1/courses/${courseId}/contents/${contentId}`);
    $("title").textContent = content.title;
    document.title = content.title;
  } catch {
    // The title is a nicety; the video plays without it.
  }
}

// Polls the manifest until the job ends: its progress, then playback as soon as a rendition is
// playable, then the files the finished job published.
async function follow() {
  while (RUNNING.has(manifest.status)) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    let next;
    try {
      next = await api(manifestPath);
    } catch {
      continue;  // a restarting node, a network blip: the next poll tells
    }
    const before = manifest;
    manifest = next;
    showJob();
    if (!player && next.hls_master) play(startPosition());
    else if (player && fileOf(next.hls_master) !== fileOf(before.hls_master)) reload();
    if (next.storyboard && !before.storyboard) loadStoryboard(next.storyboard);
  }
}

// A media URL without its signature and expiry, which change every few minutes for the same file.
function fileOf(url) { return url ? new URL(url, location.href).pathname.replace(SIGNED, "/media/") : null; }

function showJob() {
  const m = manifest;
  const label = $("transcoding");
  if (RUNNING.has(m.status)) {
    const text = m.status === "transcoding" ? `Transcoding, ${Math.round(m.progress * 100)} %`
      : m.status === "probing" ? "Preparing the video" : "Waiting to transcode";
    label.textContent = m.hls_master ? `${text}; playing what is ready` : text;
    label.hidden = false;
    status("transcoding", text);
  } else if (m.status === "failed" || m.status === "cancelled") {
    label.hidden = true;
    status("failed", m.status);
    if (!m.hls_master) notice(m.error || `the video's transcoding ${m.status}`);
  } else {
    label.hidden = true;
    status("ready", m.completed ? "watched" : "ready");
  }
}

function startPosition() {
  const at = manifest.resume_at || 0;
  const duration = manifest.duration || Infinity;
  return at < duration - END_SLACK ? at : 0;
}

// --- playback: hls.js or the browser's own HLS ---------------------------------------------------

let player = null;  // {engine, hls?}: what plays now
// Whether the viewer wants it playing: a source swap or an error pauses the element, not them.
let wantsPlaying = true;

function useHlsJs() {
  if (typeof Hls === "undefined" || !Hls.isSupported()) return false;
  if (forcedEngine) return forcedEngine === "hlsjs";
  return video.canPlayType("application/vnd.apple.mpegurl") === "";
}

// Start playing the manifest's sources at `at` seconds (again, when the sources changed).
function play(at, quality = "auto") {
  if (player?.hls) player.hls.destroy();
  player = useHlsJs() ? playHlsJs(at, quality) : playNative(at, quality);
  $("player").dataset.engine = player.engine;
  if (wantsPlaying) video.play().catch(() => {});  // blocked autoplay: the play button remains
}

function playHlsJs(at, quality) {
  const hls = new Hls({ startPosition: at, capLevelToPlayerSize: false });
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
    const levels = data.levels.map((level, index) => ({ value: String(index), label: levelLabel(level), height: level.height }));
    fillQualities(levels.sort((a, b) => b.height - a.height));
    if (quality !== "auto") hls.currentLevel = Number(quality);
    $("quality").value = quality;
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    if (hls.autoLevelEnabled) $("quality").options[0].textContent = `auto (${levelLabel(hls.levels[data.level])})`;
  });
  let mediaRecovered = false;
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (!data.fatal) return;  // hls.js retries those itself
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !mediaRecovered) {
      mediaRecovered = true;
      hls.recoverMediaError();
    } else {
      recover(`${data.type}: ${data.details}`);
    }
  });
  hls.attachMedia(video);
  hls.loadSource(manifest.hls_master);
  return { engine: "hlsjs", hls };
}

function levelLabel(level) { return level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kb/s`; }

// The native engine picks a source per quality: the master playlist for auto, a rendition's MP4
// (or its own playlist while the job runs) otherwise.
function playNative(at, quality) {
  const sources = nativeSources();
  fillQualities(sources);
  const chosen = sources.find((s) => s.value === quality) || sources[0];
  $("quality").value = chosen.value;
  video.src = chosen.url;
  // Always: a running job's playlist is a live one to the browser, which would start at its end.
  video.addEventListener("loadedmetadata", () => { video.currentTime = at; }, { once: true });
  return { engine: "native" };
}

function nativeSources() {
  const hls = video.canPlayType("application/vnd.apple.mpegurl") !== "";
  const renditions = manifest.renditions
    .map((r) => ({ value: r.label, label: r.label, url: r.url || (hls ? r.hls : null), height: r.height }))
    .filter((r) => r.url)
    .sort((a, b) => b.height - a.height);
  const auto = hls ? manifest.hls_master : renditions[0]?.url;
  return [{ value: "auto", label: "auto", url: auto }, ...renditions];
}

function fillQualities(options) {
  $("quality").replaceChildren(...options.map((o) => new Option(o.label, o.value)));
  if (!options.some((o) => o.value === "auto")) $("quality").prepend(new Option("auto", "auto"));
}

$("quality").addEventListener("change", (event) => {
  const value = event.target.value;
  if (player?.hls) {
    $("quality").options[0].textContent = "auto";
    player.hls.currentLevel = value === "auto" ? -1 : Number(value);  // -1: adaptive again
  } else if (player) {
    play(video.currentTime, value);
  }
});

// A fatal error (signed URLs expired, or the job's files moved when it was published): fetch a
// fresh manifest and carry on from where playback was, once.
let recovering = false;
async function recover(reason) {
  if (recovering) return;
  recovering = true;
  console.warn("playback failed, reloading the sources:", reason);
  try {
    await reload();
  } finally {
    recovering = false;
  }
}

async function reload() {
  try {
    manifest = await api(manifestPath);
  } catch (error) {
    return notice(error.message);
  }
  if (manifest.hls_master) play(video.currentTime, $("quality").value);
}

video.addEventListener("error", () => { if (player?.engine === "native") recover(video.error?.message || "media error"); });

// --- controls: play, scrub bar with the storyboard, clock, mute, full screen -----------------

const scrub = $("scrub");
let scrubbing = false;

function togglePlay() {
  wantsPlaying = video.paused;
  if (wantsPlaying) video.play().catch(() => {}); else video.pause();
}

$("play").addEventListener("click", togglePlay);
video.addEventListener("click", togglePlay);
video.addEventListener("play", () => { $("play").textContent = "\u275A\u275A"; $("play").setAttribute("aria-label", "Pause"); });
video.addEventListener("pause", () => { $("play").textContent = "\u25B6"; $("play").setAttribute("aria-label", "Play"); });
video.addEventListener("playing", () => { if (!RUNNING.has(manifest.status)) status("playing"); });
video.addEventListener("pause", () => { if (!RUNNING.has(manifest.status)) status("paused"); });
video.addEventListener("ended", () => { wantsPlaying = false; });
video.addEventListener("durationchange", () => { if (Number.isFinite(video.duration)) scrub.max = video.duration; showClock(); });
video.addEventListener("timeupdate", () => { if (!scrubbing) scrub.value = video.currentTime; showClock(); });

$("mute").addEventListener("click", () => {
  video.muted = !video.muted;
  $("mute").textContent = video.muted ? "\u{1F507}" : "\u{1F50A}";
});
$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen(); else $("player").requestFullscreen();
});

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea, button") || !player) return;
  if (event.key === " " || event.key === "k") togglePlay();
  else if (event.key === "ArrowLeft") video.currentTime = Math.max(0, video.currentTime - 5);
  else if (event.key === "ArrowRight") video.currentTime = Math.min(video.duration, video.currentTime + 5);
  else return;
  event.preventDefault();
});

// While the learner drags, the bar follows the pointer, not playback; the seek comes on release.
scrub.addEventListener("input", () => {
  scrubbing = true;
  showThumb(Number(scrub.value));
});
scrub.addEventListener("change", () => {
  scrubbing = false;
  video.currentTime = Number(scrub.value);
});
$("timeline").addEventListener("pointermove", (event) => {
  const box = scrub.getBoundingClientRect();
  const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
  if (!scrubbing) showThumb(fraction * Number(scrub.max));
});
$("timeline").addEventListener("pointerleave", () => { if (!scrubbing) $("thumb").hidden = true; });
// Released without moving, no change event comes. `change` is dispatched in the same task as the
// pointerup, so no timeupdate moves the bar in between.
scrub.addEventListener("pointerup", () => { scrubbing = false; $("thumb").hidden = true; });

function showClock() {
  const duration = Number.isFinite(video.duration) ? video.duration : manifest?.duration || 0;
  $("clock").textContent = `${clock(video.currentTime)} / ${clock(duration)}`;
}

// The storyboard: WebVTT cues naming a region of a sprite, `storyboard.jpg#xywh=x,y,w,h`, the
// image relative to the VTT's own (signed) URL.
let tiles = [];  // {start, end, image, x, y, w, h}

async function loadStoryboard(url) {
  try {
    const response = await fetch(url);
    if (response.ok) tiles = parseStoryboard(await response.text(), response.url);
  } catch {
    // No thumbnails over the scrub bar; the times still show.
  }
}

function parseStoryboard(text, base) {
  const cues = [];
  for (const block of text.replace(/\r\n?/g, "\n").split(/\n{2,}/)) {
    const lines = block.split("\n");
    const timing = lines.findIndex((line) => line.includes("-->"));
    if (timing < 0 || !lines[timing + 1]) continue;
    const [start, end] = lines[timing].split("-->").map((part) => vttSeconds(part.trim().split(/\s+/)[0]));
    const target = new URL(lines[timing + 1].trim(), base);
    const region = /^xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(target.hash.slice(1));
    if (!region) continue;
    target.hash = "";
    const [x, y, w, h] = region.slice(1).map(Number);
    cues.push({ start, end, image: target.href, x, y, w, h });
  }
  return cues;
}

function vttSeconds(stamp) { return stamp.split(":").reduce((total, part) => total * 60 + Number(part), 0); }

function showThumb(seconds) {
  const thumb = $("thumb");
  const tile = tiles.find((t) => seconds >= t.start && seconds < t.end) || (seconds >= tiles.at(-1)?.end ? tiles.at(-1) : null);
  if (tile) {
    thumb.style.width = `${tile.w}px`;
    thumb.style.height = `${tile.h}px`;
    thumb.style.backgroundImage = `url("${tile.image}")`;
    thumb.style.backgroundPosition = `-${tile.x}px -${tile.y}px`;
  } else {
    thumb.style.width = "3.5rem";
    thumb.style.height = "1.4rem";
    thumb.style.backgroundImage = "none";
  }
  const box = scrub.getBoundingClientRect();
  const fraction = Number(scrub.max) > 0 ? seconds / Number(scrub.max) : 0;
  thumb.style.left = `${fraction * box.width}px`;
  $("thumb-time").textContent = clock(seconds);
  thumb.dataset.seconds = seconds.toFixed(1);
  thumb.hidden = false;
}

// --- progress: segments played, sent as heartbeats over the progress socket -------------------

let segment = null;       // [start, end] playing now, grown on every timeupdate
let unsent = [];          // segments ended and not sent yet
const inFlight = new Map(); // heartbeat id -> its segments, until acked
let heartbeatId = 0;

video.addEventListener("timeupdate", () => {
  if (video.paused || video.seeking) return;
  const t = video.currentTime;
  if (segment && t >= segment[1]) segment[1] = t;
  else { endSegment(); segment = [t, t]; }
});
video.addEventListener("seeking", endSegment);  // the segment ends where playback was
video.addEventListener("seeked", () => { if (video.paused) heartbeat(); });
video.addEventListener("pause", () => {
  if (segment) segment[1] = Math.max(segment[1], video.currentTime);
  endSegment();
  heartbeat();
});
setInterval(() => { if (!video.paused) heartbeat(); }, HEARTBEAT_MS);
addEventListener("pagehide", () => heartbeat({ leaving: true }));
document.addEventListener("visibilitychange", () => { if (document.hidden) heartbeat(); });

function endSegment() {
  if (segment && segment[1] > segment[0]) unsent.push(segment);
  segment = null;
}

// Union of segments, sorted: what the server keeps anyway, in as few pairs as possible.
function union(segments) {
  const sorted = segments.map(([a, b]) => [a, b]).sort((x, y) => x[0] - y[0]);
  const out = [];
  for (const [a, b] of sorted) {
    const last = out.at(-1);
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out.map(([a, b]) => [round(a), round(b)]);
}

function round(seconds) { return Math.round(seconds * 1000) / 1000; }

function heartbeat({ leaving = false } = {}) {
  if (!player || !video.readyState) return;
  if (segment) {  // cut the playing segment here; it goes on from this point
    unsent.push([segment[0], segment[1]]);
    segment = [segment[1], segment[1]];
  }
  const merged = union(unsent.filter(([a, b]) => b > a));
  const played = merged.slice(0, MAX_SEGMENTS);
  const update = {
    content_id: contentId,
    position: round(video.currentTime),
    played,
    playback_rate: video.playbackRate,
    client_ts: new Date().toISOString(),
  };
  const id = heartbeatId + 1;
  if (socket?.send({ type: "progress", id, update })) {
    heartbeatId = id;
    inFlight.set(id, played);
    unsent = merged.slice(MAX_SEGMENTS);
  } else if (leaving) {
    // No socket to say it on: the HTTP heartbeat, which outlives the page.
    api("/api/v1/progress", { method: "POST", json: update, keepalive: true }).catch(() => {});
  } else {
    unsent = merged;  // sent once the socket is back
  }
}

function saved(state) {
  if (!state) return;
  const text = `saved at ${clock(state.position)}, ${Math.round(state.coverage * 100)} % watched`;
  $("saved").textContent = state.completed ? `${text} \u2713` : text;
  $("saved").dataset.position = state.position;
}

// --- the progress socket: presence, heartbeats and their acks ---------------------------------

let socket = null;

function connect(courseId) {
  socket = liveSocket(`/api/v1/ws/progress/${courseId}`, {
    onFrame: handle,
    // Heartbeats never acked are sent again: the server keeps the union, so twice is harmless.
    onClose: () => {
      for (const played of inFlight.values()) unsent.push(...played);
      inFlight.clear();
    },
    deviceId,
  });
}

function handle(frame) {
  switch (frame.type) {
    case "welcome":
      socket.send({ type: "presence", content_id: contentId });
      if (unsent.length) heartbeat();
      return;
    case "ack":
      inFlight.delete(frame.id);
      saved(frame.state);
      return;
    case "error":
      if (frame.id != null && inFlight.has(frame.id)) {
        // Not stored now (the server is busy): sent again with the next heartbeat.
        if (frame.code === "unavailable") unsent.push(...inFlight.get(frame.id));
        inFlight.delete(frame.id);
      }
      if (frame.code !== "unavailable") notice(frame.message);
      return;
    default: return;
  }
}

start();
