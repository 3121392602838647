// The Distillery dashboard: one job's live curves, report, artifacts and cancel button, the refresh loop
// and the key (the jobs list is in jobs_table.js, the job's particulars in job_details.js, the comparison
// in compare.js, the charts in charts.js, the sweeps' list and page in sweeps.js).
// Plain JavaScript served as is: no build step, no library, no request to any host but the API's.
// The API key lives in sessionStorage (this tab only) and travels in the Authorization header, never in a URL.
"use strict";

const KEY_STORE = "distillery.apiKey";
const API = new URL("../v1/", document.baseURI);
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const CANCELLABLE = new Set(["queued", "running"]);
const REFRESH_MS = 1000;
const LOG_LINES = 50;

const state = { jobId: null, feed: null, series: new Map(), log: [], artifactsOf: null, timer: 0, busy: false };
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY_STORE) || "";
  const headers = { ...options.headers, Authorization: `Bearer ${key}` };
  const response = await fetch(new URL(path, API), { ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error.message;
    } catch {
      // not the API's error shape: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();

function el(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

// Formatting
const number = (value) =>
  typeof value !== "number" ? "–" : Math.abs(value) >= 1000 ? value.toLocaleString() : value.toPrecision(4);
const BYTE_UNITS = ["B", "KB", "MB", "GB", "TB"];
// Decimal units, three significant digits: 532 KB, 1.24 MB, 12.5 GB.
function bytes(value) {
  if (typeof value !== "number") return "–";
  const power = Math.min(BYTE_UNITS.length - 1, value < 1000 ? 0 : Math.floor(Math.log10(value) / 3));
  const scaled = value / 1000 ** power;
  return `${power ? Number(scaled.toPrecision(3)) : value} ${BYTE_UNITS[power]}`;
}
const percent = (value) => (typeof value !== "number" ? "–" : `${(100 * value).toFixed(1)}%`);
const signed = (value) => (value >= 0 ? "+" : "") + value.toPrecision(3);
const label = (name) => name.replaceAll("_", " ");

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// One job
async function refreshJob() {
  const jobId = state.jobId;
  const job = await getJson(`jobs/${jobId}`);
  if (jobId !== state.jobId) return null;
  const { step, total_steps: total, epoch } = job.progress;
  $("job-title").textContent = job.name ? `${job.name} · ${job.id}` : job.id;
  $("job-status").textContent = job.status;
  $("job-status").className = `status ${job.status}`;
  $("job-progress").max = total || 1;
  $("job-progress").value = total ? step : 0;
  $("job-steps").textContent = total
    ? `step ${step} of ${total}` + (epoch != null ? ` · epoch ${epoch.toFixed(2)}` : "")
    : "not started";
  $("job-sweep").hidden = !job.sweep_id;
  if (job.sweep_id) Object.assign($("job-sweep"), { href: `#${job.sweep_id}`, textContent: `of sweep ${job.sweep_id}` });
  $("cancel").disabled = !CANCELLABLE.has(job.status);
  renderDetails(job);
  renderReport(job.result);
  if (TERMINAL.has(job.status) && state.artifactsOf !== job.id) {
    state.artifactsOf = job.id;
    await refreshArtifacts(job.id);
  }
  return job;
}

function reportRows(result) {
  const { teacher, student, latency } = result;
  const split = result.retention_split || (student.test ? "test" : "eval");
  const metrics = Object.keys(student[split] || {});
  return [
    ["Parameters", number(teacher?.parameters?.total), number(student.parameters?.total)],
    ["Size on disk", bytes(teacher?.size_on_disk_bytes), bytes(student.size_on_disk_bytes)],
    ...metrics.map((name) => [`${label(name)} (${split})`, number(teacher?.[split]?.[name]), number(student[split][name])]),
    ["Latency (ms)", number(latency?.teacher_ms), number(latency?.student_ms)],
  ];
}

function summaryRows(result) {
  const retention = Object.entries(result.retention || {}).map(([name, value]) => [`Retention of ${label(name)}`, percent(value)]);
  const speedup = result.latency?.speedup;
  return [
    ...(retention.length ? retention : [["Retention", "– (no teacher)"]]),
    ["Speed-up", typeof speedup === "number" ? `${speedup.toFixed(2)}×` : "–"],
    ["Gain over the control", gainText(result)],
    ...verdictRows(result.control),
  ];
}

// The verdict on the primary metric, beside the gain, and what the control measures (its mode).
function verdictRows(control) {
  const verdict = control?.verdict;
  if (!verdict) return [];
  const rows = [["Verdict", `${verdict.verdict}: ${verdict.explanation}`]];
  if (control.measures) rows.push([`Control (${control.mode})`, control.measures]);
  return rows;
}

function gainText(result) {
  const gain = result.gain_over_control ?? result.control?.gain;
  if (typeof gain === "number") return signed(gain);
  if (gain && typeof gain === "object") {
    return Object.entries(gain)
      .filter(([, value]) => typeof value === "number")
      .map(([name, value]) => `${label(name)} ${signed(value)}`)
      .join(", ");
  }
  return result.control?.status ? `control ${result.control.status}` : "– (no control run)";
}

function renderReport(result) {
  if (!result?.student) {
    const empty = el("td", { className: "empty", textContent: "The report appears when the job succeeds." });
    $("report").replaceChildren(el("tbody", {}, el("tr", {}, empty)));
    return;
  }
  const head = el("thead", {}, el("tr", {}, ...["", "Teacher", "Student"].map((text) => el("th", { textContent: text }))));
  const body = el("tbody");
  for (const cells of reportRows(result)) {
    body.append(el("tr", {}, el("th", { textContent: cells[0] }), ...cells.slice(1).map((text) => el("td", { textContent: text }))));
  }
  for (const [name, value] of summaryRows(result)) {
    body.append(el("tr", { className: "summary" }, el("th", { textContent: name }), el("td", { colSpan: 2, textContent: value })));
  }
  $("report").replaceChildren(head, body);
}

async function refreshArtifacts(jobId) {
  const page = await getJson(`jobs/${jobId}/artifacts`);
  const items = page.data.map((artifact) => {
    const button = el("button", { type: "button", textContent: `Download ${artifact.name}` });
    button.dataset.artifact = artifact.name;
    button.onclick = () => download(jobId, artifact.name).catch((error) => notice(error.message));
    return el("li", {}, button, ` ${bytes(artifact.bytes)}, ${artifact.media_type}`);
  });
  $("artifacts").replaceChildren(...(items.length ? items : [el("li", { className: "empty", textContent: "None." })]));
}

// The key goes in a header, so the file is fetched and handed to the browser as a blob.
async function download(jobId, name) {
  const blob = await (await api(`jobs/${jobId}/artifacts/${encodeURIComponent(name)}`)).blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

// Events: the live stream when the service has it, else polling the event list
function addEvents(feed, events) {
  if (feed !== state.feed) return;
  for (const event of events) {
    if (event.id <= feed.lastId) continue; // a resumed stream or a repeated page never doubles a point
    feed.lastId = event.id;
    state.log.push(event);
    if (event.type !== "metrics" || !event.data) continue;
    for (const [name, value] of Object.entries(event.data.metrics || {})) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      if (!state.series.has(name)) state.series.set(name, new Map());
      const bySplit = state.series.get(name);
      if (!bySplit.has(event.data.split)) bySplit.set(event.data.split, []);
      bySplit.get(event.data.split).push([event.data.step, value]);
    }
  }
  drawCurves();
  drawLog();
}

function parseMessage(block) {
  const data = block
    .split(/\r\n|\n|\r/)
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).replace(/^ /, ""));
  return data.length ? JSON.parse(data.join("\n")) : null; // a comment (": keep-alive") carries no data
}

async function readStream(feed) {
  const headers = { Accept: "text/event-stream" };
  if (feed.lastId) headers["Last-Event-ID"] = String(feed.lastId);
  let response;
  try {
    response = await api(`jobs/${feed.jobId}/events/stream`, { headers, signal: feed.controller.signal });
  } catch (error) {
    if (error instanceof ApiError) return "unavailable";
    throw error;
  }
  if (!(response.headers.get("content-type") || "").startsWith("text/event-stream")) return "unavailable";
  showFeed(feed, "stream");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "ended";
    buffer += value;
    for (let end = buffer.search(/\r\n\r\n|\n\n|\r\r/); end >= 0; end = buffer.search(/\r\n\r\n|\n\n|\r\r/)) {
      const event = parseMessage(buffer.slice(0, end));
      buffer = buffer.slice(end).replace(/^(\r\n\r\n|\n\n|\r\r)/, "");
      if (event) addEvents(feed, [event]);
    }
  }
}

async function follow(feed) {
  while (feed === state.feed) {
    let outcome;
    try {
      outcome = await readStream(feed);
    } catch {
      if (feed.controller.signal.aborted) return;
      outcome = "dropped";
    }
    if (outcome === "unavailable") {
      showFeed(feed, "polling"); // each refresh polls from now on
      return;
    }
    // The stream closes after the job's last status; any other end was a dropped connection: resume.
    const job = await getJson(`jobs/${feed.jobId}`).catch(() => null);
    if (job && TERMINAL.has(job.status)) {
      feed.finished = true;
      showFeed(feed, feed.transport);
      return;
    }
    await sleep(REFRESH_MS);
  }
}

// The job was read before the events: once it was terminal, a last page means the log is complete.
async function pollEvents(feed, job) {
  for (;;) {
    const page = await getJson(`jobs/${feed.jobId}/events?after=${feed.lastId}&limit=1000`);
    addEvents(feed, page.data);
    if (!page.has_more || feed !== state.feed) break;
  }
  if (TERMINAL.has(job.status)) {
    feed.finished = true;
    showFeed(feed, "polling");
  }
}

function showFeed(feed, transport) {
  if (feed !== state.feed) return;
  feed.transport = transport;
  const words = { stream: "live stream", polling: "polling", connecting: "connecting" }[transport];
  $("feed").textContent = `updates: ${words}${feed.finished ? " · complete" : ""}`;
  $("feed").dataset.transport = transport;
}

// Curves: a chart per metric, the train split apart from eval and test (train loss is the method's
// objective, e.g. α·KD + CE; eval loss is CE alone: on one axis the train curve would look flat).
function drawCurves() {
  const names = [...state.series.keys()].sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
  const charts = names.flatMap((name) => {
    const splits = [...state.series.get(name)];
    const train = splits.filter(([split]) => split === "train");
    const held = splits.filter(([split]) => split !== "train");
    return [
      ...(train.length ? [chart(name, new Map(train), CHART, `train ${label(name)}`)] : []),
      ...(held.length ? [chart(name, new Map(held), CHART, `${held.map(([split]) => split).join(" & ")} ${label(name)}`)] : []),
    ];
  });
  $("curves").replaceChildren(...(charts.length ? charts : [el("p", { className: "empty", textContent: "No metrics yet." })]));
}

function drawLog() {
  const lines = state.log.slice(-LOG_LINES).reverse().map((event) =>
    el("li", { className: event.level, textContent: `${new Date(event.created_at * 1000).toLocaleTimeString()}  ${event.message}` }),
  );
  $("log").replaceChildren(...lines);
}

// Selection, refresh loop and key
function select(jobId) {
  state.feed?.controller.abort();
  Object.assign(state, { jobId, feed: null, series: new Map(), log: [], artifactsOf: null });
  $("job").hidden = !jobId;
  if (!jobId) return;
  $("job-title").textContent = jobId;
  for (const id of ["job-status", "job-steps"]) $(id).textContent = "";
  clearDetails();
  renderReport(null);
  drawCurves();
  drawLog();
  $("artifacts").replaceChildren(el("li", { className: "empty", textContent: "None yet." }));
  const feed = { jobId, lastId: 0, transport: "connecting", finished: false, controller: new AbortController() };
  state.feed = feed;
  showFeed(feed, "connecting");
  if (sessionStorage.getItem(KEY_STORE)) follow(feed);
  refreshSoon();
}

async function tick() {
  if (state.busy) return;
  state.busy = true;
  try {
    if (!sessionStorage.getItem(KEY_STORE)) {
      notice("Enter an API key to see its tenant's jobs.");
      return;
    }
    await refreshJobs();
    await refreshSweeps();
    await refreshCompare();
    if (sweepState.sweepId) await refreshSweep();
    const feed = state.feed;
    if (feed) {
      const job = await refreshJob();
      if (job && feed.transport === "polling" && !feed.finished) await pollEvents(feed, job);
    }
    notice("");
  } catch (error) {
    notice(error.status === 401 ? "The API key was refused: enter a valid one." : `The API did not answer: ${error.message}`);
  } finally {
    state.busy = false;
    clearTimeout(state.timer);
    state.timer = setTimeout(tick, REFRESH_MS);
  }
}

function refreshSoon() {
  clearTimeout(state.timer);
  state.timer = setTimeout(tick, 0);
}

function keyChanged() {
  const hasKey = Boolean(sessionStorage.getItem(KEY_STORE));
  $("forget").hidden = !hasKey;
  $("key").placeholder = hasKey ? "a key is in use in this tab" : "dk-...";
  if (!hasKey) {
    $("job-rows").replaceChildren();
    $("sweep-rows").replaceChildren();
  }
  navigate(); // follows the shown job, sweep or comparison again, with the new key
  refreshSoon();
}

$("key-form").onsubmit = (event) => {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $("key").value = "";
  keyChanged();
};
$("forget").onclick = () => {
  sessionStorage.removeItem(KEY_STORE);
  keyChanged();
};
$("cancel").onclick = async () => {
  const jobId = state.jobId;
  if (!jobId || !confirm(`Cancel job ${jobId}? It stops at its next step, and its control run with it.`)) return;
  $("cancel").disabled = true;
  try {
    await api(`jobs/${jobId}/cancel`, { method: "POST" });
  } catch (error) {
    notice(error.message);
  }
  refreshSoon();
};
// "#compare=..." shows a comparison; any other hash is a job or a sweep (sweeps.js's route).
function navigate() {
  const ids = compareIds();
  showCompare(ids);
  if (ids) {
    select(null);
    selectSweep(null);
  } else route();
}

window.onhashchange = navigate;
initSweeps();
initJobsTable();
initCompare();
keyChanged();
