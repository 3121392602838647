// Line charts drawn as SVG: no library. `lineChart` draws any series against any x axis;
// `chart` keeps the per-split form that the job page and the sweep page use.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 320, height: 160, left: 50, right: 10, top: 22, bottom: 22 };

function svg(tag, attributes = {}, text = "") {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.textContent = text;
  return node;
}

const axisLabel = (value) =>
  Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3) ? value.toExponential(1) : String(Number(value.toPrecision(3)));

// A duration in seconds as the x axis shows it: 45 s, 12.5 min, 2.1 h.
const secondsLabel = (value) =>
  value < 120 ? `${Math.round(value)} s` : value < 7200 ? `${(value / 60).toFixed(1)} min` : `${(value / 3600).toFixed(1)} h`;

function bounds(values) {
  let [low, high] = [Math.min(...values), Math.max(...values)];
  if (low === high) [low, high] = [low - (Math.abs(low) || 1) / 10, high + (Math.abs(high) || 1) / 10];
  return [low, high];
}

// series: [{ key, label, className, points: [[x, y], ...] }];
// xAxis: { name: "step" | "wall time", format, fromZero: whether the axis starts at 0 }.
function lineChart({ title, metric, series, xAxis = { name: "step", format: String }, size = CHART }) {
  const { width, height, left, right, top, bottom } = size;
  const points = series.flatMap((line) => line.points);
  const [x0, x1] = bounds(points.map(([x]) => x).concat(xAxis.fromZero ? [0] : []));
  const [y0, y1] = bounds(points.map(([, y]) => y));
  const x = (value) => (left + ((value - x0) / (x1 - x0)) * (width - left - right)).toFixed(1);
  const y = (value) => (top + ((y1 - value) / (y1 - y0)) * (height - top - bottom)).toFixed(1);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `${title} by ${xAxis.name}` });
  root.dataset.metric = metric;
  root.dataset.x = xAxis.name;
  root.append(
    svg("text", { x: left, y: 14, class: "title" }, title),
    svg("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, class: "frame" }),
    svg("text", { x: left - 4, y: top + 8, class: "tick end" }, axisLabel(y1)),
    svg("text", { x: left - 4, y: height - bottom, class: "tick end" }, axisLabel(y0)),
    svg("text", { x: left, y: height - 6, class: "tick" }, `${xAxis.name} ${xAxis.format(Math.max(0, x0))}`),
    svg("text", { x: width - right, y: height - 6, class: "tick end" }, xAxis.format(x1)),
  );
  series.forEach((line, index) => {
    const polyline = svg("polyline", { points: line.points.map(([a, b]) => `${x(a)},${y(b)}`).join(" "), class: `line ${line.className}` });
    polyline.dataset.series = line.key;
    const [lastX, lastY] = line.points[line.points.length - 1];
    root.append(polyline, svg("circle", { cx: x(lastX), cy: y(lastY), r: 2.5, class: `dot ${line.className}` }));
    if (line.label) root.append(svg("text", { x: width - right - 48 * index, y: 14, class: `legend end ${line.className}` }, line.label));
  });
  return root;
}

// One metric, a line per split (bySplit: Map split -> [[step, value]]), titled with the metric.
function chart(name, bySplit, size = CHART, title = label(name)) {
  const series = [...bySplit].map(([split, points]) => ({ key: split, label: split, className: split, points }));
  const root = lineChart({ title, metric: name, series, size });
  root.dataset.splits = [...bySplit.keys()].join(" ");
  for (const line of root.querySelectorAll("polyline")) line.dataset.split = line.dataset.series;
  return root;
}
