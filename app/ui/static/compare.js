// Comparing 2 to 5 jobs (hash "#compare=job_a,job_b"): their curves overlaid, by step or by wall time,
// train and eval apart, and their reports side by side, teacher, student and control in columns.
"use strict";

const compareState = { ids: null, runs: new Map(), x: "step", busy: false };

function compareIds() {
  const hash = location.hash.slice(1);
  if (!hash.startsWith("compare=")) return null;
  return [...new Set(hash.slice("compare=".length).split(",").filter(Boolean))].slice(0, COMPARE_MAX);
}

function showCompare(ids) {
  compareState.ids = ids;
  compareState.runs = new Map();
  $("compare").hidden = !ids;
  if (!ids) return;
  $("compare-title").textContent = `Comparing ${ids.length} jobs`;
  $("compare-curves").replaceChildren(el("p", { className: "empty", textContent: "Loading…" }));
  $("compare-report").replaceChildren();
  refreshSoon();
}

// Each job, its control's result, and its metrics events after the last one read.
async function loadRun(jobId) {
  const run = compareState.runs.get(jobId) || { points: [], lastId: 0 };
  run.job = await getJson(`jobs/${jobId}`);
  if (run.job.control_job_id && !run.control?.result) run.control = await getJson(`jobs/${run.job.control_job_id}`).catch(() => null);
  for (let more = !run.complete; more; ) {
    const page = await getJson(`jobs/${jobId}/events?after=${run.lastId}&limit=1000`);
    for (const event of page.data) {
      run.lastId = event.id;
      if (event.type === "metrics" && event.data) run.points.push({ ...event.data, time: event.created_at });
    }
    more = page.has_more;
  }
  run.complete = TERMINAL.has(run.job.status);
  compareState.runs.set(jobId, run);
  return run;
}

async function refreshCompare() {
  const ids = compareState.ids;
  if (!ids || compareState.busy) return;
  compareState.busy = true;
  try {
    const runs = [];
    for (const jobId of ids) runs.push(await loadRun(jobId));
    if (ids !== compareState.ids) return;
    drawOverlays(runs);
    renderCompareReport(runs);
  } finally {
    compareState.busy = false;
  }
}

const runName = (run) => run.job.name || run.job.id;

// Charts keyed "metric|family": train apart from eval (train loss is the method's objective, eval loss CE).
function overlaySeries(runs) {
  const charts = new Map();
  runs.forEach((run, index) => {
    const start = run.job.started_at ?? run.points[0]?.time ?? 0;
    for (const point of run.points) {
      if (point.split !== "train" && point.split !== "eval") continue;
      for (const [metric, value] of Object.entries(point.metrics || {})) {
        if (typeof value !== "number" || !Number.isFinite(value)) continue;
        const key = `${metric}|${point.split}`;
        if (!charts.has(key)) charts.set(key, new Map());
        const lines = charts.get(key);
        if (!lines.has(index)) lines.set(index, { key: run.job.id, className: `c${index}`, points: [] });
        lines.get(index).points.push([compareState.x === "step" ? point.step : point.time - start, value]);
      }
    }
  });
  return charts;
}

// The train loss first, then the eval loss, then the other metrics by name.
const chartRank = (key) => ({ "loss|train": 0, "loss|eval": 1 })[key] ?? 2;

function drawOverlays(runs) {
  const xAxis = compareState.x === "step" ? { name: "step", format: String } : { name: "wall time", format: secondsLabel, fromZero: true };
  const charts = [...overlaySeries(runs)]
    .sort(([a], [b]) => chartRank(a) - chartRank(b) || a.localeCompare(b))
    .map(([key, lines]) => {
      const [metric, split] = key.split("|");
      const root = lineChart({ title: `${split} ${label(metric)}`, metric, series: [...lines.values()], xAxis });
      root.dataset.split = split;
      return root;
    });
  const legend = runs.map((run, index) => el("span", { className: "run" }, el("span", { className: `swatch c${index}` }), runName(run)));
  $("compare-legend").replaceChildren(...legend);
  $("compare-curves").replaceChildren(...(charts.length ? charts : [el("p", { className: "empty", textContent: "No metrics yet." })]));
}

// The split each report measures on (test when there is one) and its metrics for one side.
const splitOf = (result) => result?.retention_split || (result?.student?.test ? "test" : "eval");
const sideMetrics = (result, side, split) => result?.[side]?.[split] || {};

function controlSide(run, split) {
  const control = run.control?.result;
  return {
    parameters: control?.student?.parameters?.total,
    size: control?.student?.size_on_disk_bytes,
    metrics: control?.student?.[split] || run.job.result?.control?.control_metrics || {},
    latency: control?.latency?.student_ms,
  };
}

function sidesOf(run) {
  const result = run.job.result;
  const split = splitOf(result);
  const teacher = result?.teacher;
  const student = result?.student;
  return {
    split,
    teacher: { parameters: teacher?.parameters?.total, size: teacher?.size_on_disk_bytes, metrics: sideMetrics(result, "teacher", split), latency: result?.latency?.teacher_ms },
    student: { parameters: student?.parameters?.total, size: student?.size_on_disk_bytes, metrics: sideMetrics(result, "student", split), latency: result?.latency?.student_ms },
    control: run.job.control_job_id ? controlSide(run, split) : null,
  };
}

const SIDES = ["teacher", "student", "control"];

function compareRows(runs) {
  const sides = runs.map(sidesOf);
  const metrics = [...new Set(sides.flatMap((side) => Object.keys(side.student.metrics)))];
  const cells = (pick) => sides.flatMap((side) => SIDES.map((name) => (side[name] ? pick(side[name], side) : "–")));
  const wide = (pick) => runs.map((run, index) => pick(run, sides[index]));
  return {
    sided: [
      ["Parameters", cells((side) => number(side.parameters))],
      ["Size on disk", cells((side) => bytes(side.size))],
      ...metrics.map((metric) => [label(metric), cells((side) => number(side.metrics[metric]))]),
      ["Latency (ms)", cells((side) => number(side.latency))],
    ],
    whole: [
      ["Status", wide((run) => run.job.status)],
      ["Method", wide((run) => run.job.spec?.method?.type ?? "–")],
      ["Measured on", wide((run, side) => (run.job.result ? side.split : "–"))],
      ["Retention", wide((run) => Object.entries(run.job.result?.retention || {}).map(([name, value]) => `${label(name)} ${percent(value)}`).join(", ") || "–")],
      ["Speed-up", wide((run) => (typeof run.job.result?.latency?.speedup === "number" ? `${run.job.result.latency.speedup.toFixed(2)}×` : "–"))],
      ["Gain over the control", wide((run) => (run.job.result ? gainText(run.job.result) : "–"))],
      ["Verdict", wide((run) => run.job.result?.control?.verdict?.verdict ?? "–")],
    ],
  };
}

function renderCompareReport(runs) {
  const heads = runs.map((run, index) => {
    const link = el("a", { href: `#${run.job.id}`, textContent: runName(run), title: run.job.id });
    return el("th", { colSpan: SIDES.length, className: "run-head" }, el("span", { className: `swatch c${index}` }), link);
  });
  const sideHeads = runs.flatMap(() => SIDES.map((side) => el("th", { className: "side", textContent: side })));
  const head = el("thead", {}, el("tr", {}, el("th"), ...heads), el("tr", {}, el("th"), ...sideHeads));
  const { sided, whole } = compareRows(runs);
  const body = el("tbody");
  for (const [name, values] of sided) {
    const row = el("tr", {}, el("th", { textContent: name }), ...values.map((text) => el("td", { textContent: text })));
    row.dataset.row = name;
    body.append(row);
  }
  for (const [name, values] of whole) {
    const row = el("tr", { className: "summary" }, el("th", { textContent: name }), ...values.map((text) => el("td", { colSpan: SIDES.length, textContent: text })));
    row.dataset.row = name;
    body.append(row);
  }
  $("compare-report").replaceChildren(head, body);
}

function initCompare() {
  for (const choice of document.querySelectorAll("input[name=compare-x]")) {
    choice.onchange = () => {
      compareState.x = choice.value;
      if (compareState.runs.size) drawOverlays([...compareState.ids].map((id) => compareState.runs.get(id)).filter(Boolean));
    };
  }
  $("compare-close").onclick = () => (location.hash = "");
}
