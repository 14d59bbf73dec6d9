// The dashboards' charts, drawn by uPlot (lms/static/vendor/uplot/, the global `uPlot`): watch
// time over time, the completion funnel as bars, and a video's audience retention with its
// drop-offs marked. Each chart fills its container's width, follows it when it resizes, and
// takes new data in place (`update`), so a live page redraws without rebuilding.
import { clock, duration, percent } from "/static/format.js";

const HEIGHT = 220;
export const COLOURS = { accent: "#2563eb", good: "#15803d", light: "#93c5fd", bad: "#b91c1c" };

function chart(container, options, data) {
  container.replaceChildren();
  const plot = new uPlot({ width: Math.max(container.clientWidth, 200), height: HEIGHT, ...options }, data, container);
  new ResizeObserver(() => {
    if (container.clientWidth) plot.setSize({ width: container.clientWidth, height: HEIGHT });
  }).observe(container);
  return plot;
}

// A date "YYYY-MM-DD" as uPlot's x (seconds), at midnight UTC: labels read in UTC show that date.
function dayOf(text) { return Date.parse(`${text}T00:00:00Z`) / 1000; }
const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");

/** Watch time (minutes, an area) and completions (points, right axis) per day or week. */
export function watchTimeChart(container, buckets) {
  const data = (b) => [b.map((x) => dayOf(x.start)), b.map((x) => x.watched_seconds / 60), b.map((x) => x.completions)];
  const plot = chart(container, {
    tzDate: utc,
    scales: { min: { range: (_, lo, hi) => [0, Math.max(hi, 1)] }, n: { range: (_, lo, hi) => [0, Math.max(hi, 1)] } },
    series: [
      {},
      { label: "Watched", scale: "min", stroke: COLOURS.accent, fill: COLOURS.accent + "33", width: 2,
        value: (_, v) => (v == null ? "—" : duration(v * 60)) },
      { label: "Completions", scale: "n", stroke: COLOURS.good, width: 0, points: { show: true, size: 7, fill: COLOURS.good },
        paths: () => null },
    ],
    axes: [{}, { scale: "min", label: "minutes" }, { scale: "n", side: 1, grid: { show: false }, label: "completions" }],
  }, data(buckets));
  return { plot, update: (next) => plot.setData(data(next)) };
}

/** Per content in course order: the share of enrolled learners who started it (light bar) and
 * who completed it (dark bar, in front: never more than started). */
export function funnelChart(container, steps) {
  let titles = steps.map((s) => s.title);
  const data = (s) => [s.map((_, i) => i), s.map((x) => x.started_share), s.map((x) => x.completed_share)];
  const bars = uPlot.paths.bars({ size: [0.7, 80] });
  const plot = chart(container, {
    scales: { x: { time: false, range: (u) => [-0.5, Math.max(u.data[0].length, 1) - 0.5] }, y: { range: [0, 1] } },
    series: [
      { label: "Content", value: (_, i) => (i == null ? "—" : titles[i] ?? "") },
      { label: "Started", stroke: COLOURS.light, fill: COLOURS.light, paths: bars, points: { show: false }, value: (_, v) => (v == null ? "—" : percent(v)) },
      { label: "Completed", stroke: COLOURS.good, fill: COLOURS.good, paths: bars, points: { show: false }, value: (_, v) => (v == null ? "—" : percent(v)) },
    ],
    axes: [
      { splits: (u) => u.data[0], values: (_, splits) => splits.map((i) => shorten(titles[i] ?? "")), grid: { show: false } },
      { values: (_, splits) => splits.map(percent) },
    ],
  }, data(steps));
  return {
    plot,
    update(next) {
      titles = next.map((s) => s.title);
      plot.setData(data(next));
    },
  };
}

function shorten(title) { return title.length > 14 ? title.slice(0, 13) + "…" : title; }

/** A video's audience retention: the share of its viewers who watched each second, with its
 * steepest drop-offs shaded and marked at the second each falls fastest. */
export function retentionChart(container, video) {
  let drops = video.drop_offs;
  const data = (v) => [v.retention.map((_, second) => second), v.retention];
  const plot = chart(container, {
    scales: { x: { time: false }, y: { range: [0, 1] } },
    series: [
      { label: "Second", value: (_, s) => (s == null ? "—" : clock(s)) },
      { label: "Watching", stroke: COLOURS.accent, fill: COLOURS.accent + "22", width: 2, points: { show: false },
        value: (_, v) => (v == null ? "—" : percent(v)) },
    ],
    axes: [
      { values: (_, splits) => splits.map(clock) },
      { values: (_, splits) => splits.map(percent) },
    ],
    hooks: { draw: [(u) => markDrops(u, drops)] },
  }, data(video));
  return {
    plot,
    update(next) {
      drops = next.drop_offs;
      plot.setData(data(next));
    },
  };
}

function markDrops(u, drops) {
  const { ctx } = u;
  const { top, height } = u.bbox;
  ctx.save();
  for (const drop of drops) {
    const from = u.valToPos(drop.start, "x", true);
    const to = u.valToPos(drop.end, "x", true);
    ctx.fillStyle = COLOURS.bad + "22";
    ctx.fillRect(from, top, Math.max(to - from, 1), height);
    const at = u.valToPos(drop.at, "x", true);
    ctx.strokeStyle = COLOURS.bad;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(at, top);
    ctx.lineTo(at, top + height);
    ctx.stroke();
    ctx.fillStyle = COLOURS.bad;
    ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.fillText(`-${percent(drop.drop)}`, at + 4 * devicePixelRatio, top + 14 * devicePixelRatio);
  }
  ctx.restore();
}
