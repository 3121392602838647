// The dashboard's sweeps: the list, and one sweep's trials (best highlighted), curves, report and cancel.
// Loaded before dashboard.js and only declares: its functions use dashboard.js's helpers (api, el, chart)
// when they run, and dashboard.js calls route() and initSweeps() once both files are in.
"use strict";

const FINISHED_TRIALS = new Set(["succeeded", "pruned", "failed", "cancelled"]);
const SPARK = { width: 180, height: 64, left: 36, right: 6, top: 18, bottom: 14 };
const sweepState = { sweepId: null, listed: true };

// Hashes name what is shown: a sweep's id ("#swp_...") shows the sweep, any other id the job.
function route() {
  const id = location.hash.slice(1) || null;
  const isSweep = Boolean(id?.startsWith("swp_"));
  select(isSweep ? null : id);
  selectSweep(isSweep ? id : null);
}

function selectSweep(sweepId) {
  sweepState.sweepId = sweepId;
  $("sweep").hidden = !sweepId;
  if (!sweepId) return;
  $("sweep-title").textContent = sweepId;
  for (const id of ["sweep-status", "sweep-stage", "sweep-trials", "sweep-best", "sweep-error"]) $(id).textContent = "";
  $("trial-rows").replaceChildren();
  renderSweepReport(null);
  refreshSoon();
}

// A spec that names no objective ranks by its task's primary eval metric (the service's PRIMARY_METRIC).
const PRIMARY_METRIC = { sequence_classification: "accuracy", causal_lm: "loss" };

function objectiveOf(sweep) {
  const objective = { ...(sweep.report?.objective || sweep.spec?.objective) };
  objective.metric ||= PRIMARY_METRIC[sweep.spec?.base?.task || "sequence_classification"];
  return objective;
}

// The trials a sweep runs: those it ran once it ended, else its budget, or its grid's size when smaller.
function plannedTrials(sweep) {
  if (TERMINAL.has(sweep.status)) return sweep.trials.length;
  const { budget, search, sampler } = sweep.spec || {};
  if (sampler !== "grid" || typeof search !== "object") return budget?.max_trials;
  let points = 1;
  for (const dimension of Object.values(search)) {
    if (Array.isArray(dimension)) points *= dimension.length;
    else if (dimension.step) points *= Math.floor((dimension.high - dimension.low) / dimension.step + 1e-9) + 1;
    else points *= Math.floor(dimension.high - dimension.low) + 1; // a whole-number range
  }
  return Math.min(points, budget?.max_trials ?? points);
}

function trialCounts(sweep) {
  if (!sweep.trials) {
    const counted = sweep.report?.trials || {};
    const done = ["completed", "pruned", "failed", "cancelled"].reduce((sum, key) => sum + (counted[key] || 0), 0);
    return { done, total: counted.total, pruned: counted.pruned || 0 };
  }
  return {
    done: sweep.trials.filter((trial) => FINISHED_TRIALS.has(trial.status)).length,
    total: plannedTrials(sweep),
    pruned: sweep.trials.filter((trial) => trial.status === "pruned").length,
  };
}

function trialsText(sweep) {
  const { done, total } = trialCounts(sweep);
  return total ? `${done} / ${total}` : String(done);
}

const bestText = (sweep) => (typeof sweep.best_trial?.value === "number" ? `${number(sweep.best_trial.value)} (#${sweep.best_trial.number})` : "–");

// The list
function sweepRow(sweep) {
  const row = el(
    "tr",
    { className: sweep.id === sweepState.sweepId ? "selected" : "" },
    el("td", {}, el("a", { href: `#${sweep.id}`, textContent: sweep.name || sweep.id })),
    el("td", {}, el("span", { className: `status ${sweep.status}`, textContent: sweep.status })),
    el("td", { textContent: sweep.stage || "–" }),
    el("td", { textContent: trialsText(sweep) }),
    el("td", { textContent: bestText(sweep) }),
  );
  row.dataset.sweep = sweep.id;
  row.onclick = () => (location.hash = sweep.id);
  return row;
}

async function refreshSweeps() {
  if (!sweepState.listed) return;
  let page;
  try {
    page = await getJson("sweeps?limit=50");
  } catch (error) {
    if (error.status !== 404) throw error;
    $("sweeps").hidden = true; // a service without sweeps: no section
    sweepState.listed = false;
    return;
  }
  $("sweep-rows").replaceChildren(...page.data.map(sweepRow));
  $("no-sweeps").hidden = page.data.length > 0;
}

// One sweep
async function refreshSweep() {
  const sweepId = sweepState.sweepId;
  const sweep = await getJson(`sweeps/${sweepId}`);
  if (sweepId !== sweepState.sweepId) return;
  const { pruned } = trialCounts(sweep);
  const metric = objectiveOf(sweep).metric || "value";
  $("sweep-title").textContent = sweep.name ? `${sweep.name} · ${sweep.id}` : sweep.id;
  $("sweep-status").textContent = sweep.status;
  $("sweep-status").className = `status ${sweep.status}`;
  $("sweep-stage").textContent = `stage ${sweep.stage || "–"}`;
  $("sweep-trials").textContent = `trials ${trialsText(sweep)}` + (pruned ? ` (${pruned} pruned)` : "");
  $("sweep-best").textContent = `best ${label(metric)} ${bestText(sweep)}`;
  $("sweep-cancel").disabled = TERMINAL.has(sweep.status) || sweep.status === "cancelling";
  $("sweep-error").hidden = !sweep.error;
  $("sweep-error").textContent = sweep.error ? `${sweep.error.code}: ${sweep.error.message}` : "";
  $("trial-metric").textContent = label(metric);
  const trials = sweep.trials || [];
  $("trial-rows").replaceChildren(...trials.map((trial) => trialRow(trial, sweep.best_trial?.number, metric)));
  $("no-trials").hidden = trials.length > 0;
  renderSweepReport(sweep);
}

const paramText = (value) =>
  typeof value === "number" && !Number.isInteger(value) ? value.toPrecision(3) : typeof value === "object" ? JSON.stringify(value) : String(value);

function trialRow(trial, bestNumber, metric) {
  const params = Object.entries(trial.params || {}).map(([key, value]) => `${key.split(".").pop()}=${paramText(value)}`);
  const points = (trial.eval_curve || []).map((point) => [point.step, point.value]);
  const curve = points.length ? chart(metric, new Map([["eval", points]]), SPARK) : el("span", { className: "empty", textContent: "–" });
  const row = el(
    "tr",
    { className: trial.number === bestNumber ? "best" : "" },
    el("td", {}, trial.job_id ? el("a", { href: `#${trial.job_id}`, textContent: String(trial.number), title: trial.job_id }) : String(trial.number)),
    el("td", {}, el("span", { className: `status ${trial.status}`, textContent: trial.status })),
    el("td", { className: "params", textContent: params.join(" ") }),
    el("td", { textContent: number(trial.value) }),
    el("td", {}, curve),
  );
  row.dataset.trial = trial.number;
  return row;
}

// The report: test metrics of the best trial, retention, the control, gain, verdict and cost
const metricsText = (metrics) =>
  Object.entries(metrics || {})
    .filter(([, value]) => typeof value === "number")
    .map(([name, value]) => `${label(name)} ${number(value)}`)
    .join(", ") || "–";

function controlText(control) {
  if (!control) return "– (no control run)";
  const measured = control.metrics || control.test;
  return `${control.mode || ""} ${measured ? metricsText(measured) : control.status || ""}`.trim();
}

function sweepReportRows(report) {
  const { test, control, gain, verdict, trials } = report;
  const best = report.best_trial;
  const split = test?.split || "test";
  const retention = Object.entries(test?.retention || {}).map(([name, value]) => `${label(name)} ${percent(value)}`);
  const gains = Object.entries(gain || {}).filter(([, value]) => typeof value === "number");
  const counted = ["completed", "pruned", "failed", "cancelled"].filter((key) => key in (trials || {}));
  return [
    ["Best trial", best ? `#${best.number} (${best.job_id}): eval ${number(best.value)}` : "–"],
    ["Test: student", (split === "test" ? "" : `${split}, no test file: `) + metricsText(test?.student)],
    ["Test: teacher", metricsText(test?.teacher)],
    ["Retention", retention.join(", ") || "–"],
    ["Control", controlText(control)],
    ["Control measures", control?.measures || "–"],
    ["Gain over the control", gains.map(([name, value]) => `${label(name)} ${signed(value)}`).join(", ") || "–"],
    ["Spread across trials", typeof report.spread === "number" ? `±${number(report.spread)}` : "–"],
    ["Verdict", verdict ? `${verdict.verdict}: ${verdict.explanation || ""}` : "–"],
    ["Trials", trials ? `${trials.total} run: ${counted.map((key) => `${trials[key]} ${key}`).join(", ")}` : "–"],
    ["CPU-hours", number(report.cpu_hours)],
    ["GPU-hours", number(report.gpu_hours)],
  ];
}

function renderSweepReport(sweep) {
  if (!sweep?.report) {
    const empty = el("td", { className: "empty", textContent: "The report appears when the sweep succeeds." });
    $("sweep-report").replaceChildren(el("tbody", {}, el("tr", {}, empty)));
    return;
  }
  const body = el("tbody");
  for (const [name, value] of sweepReportRows(sweep.report)) {
    const cell = el("td", { textContent: value });
    if (name === "Verdict" && sweep.report.verdict) cell.className = `verdict ${sweep.report.verdict.verdict.replaceAll(" ", "-")}`;
    const row = el("tr", {}, el("th", { textContent: name }), cell);
    row.dataset.row = name;
    body.append(row);
  }
  $("sweep-report").replaceChildren(body);
}

async function cancelSweep() {
  const sweepId = sweepState.sweepId;
  if (!sweepId || !confirm(`Cancel sweep ${sweepId}? Its running trials stop and no new one starts.`)) return;
  $("sweep-cancel").disabled = true;
  try {
    await api(`sweeps/${sweepId}/cancel`, { method: "POST" });
  } catch (error) {
    notice(error.message);
  }
  refreshSoon();
}

function initSweeps() {
  $("sweep-cancel").onclick = cancelSweep;
}
