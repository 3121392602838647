// One job's particulars: its links (control, parent, teacher job, sweep), its whole error, its timestamps
// and durations, and its spec as hyperparameters and as JSON.
"use strict";

const stamp = (seconds) => (seconds == null ? "–" : new Date(seconds * 1000).toLocaleString());

// A span of seconds in words: 42 s, 3 min 05 s, 2 h 07 min.
function duration(seconds) {
  if (seconds == null || !(seconds >= 0)) return "–";
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")} min`;
}

function jobLink(text, jobId) {
  const link = el("a", { href: `#${jobId}`, textContent: jobId });
  return el("span", {}, `${text} `, link);
}

function renderLinks(job) {
  const links = [];
  if (job.control_job_id) links.push(jobLink("control run:", job.control_job_id));
  if (job.parent_id) links.push(jobLink("the control of:", job.parent_id));
  if (job.spec?.teacher?.job) links.push(jobLink("teacher job:", job.spec.teacher.job));
  for (const link of links) link.querySelector("a").dataset.link = link.firstChild.textContent.trim();
  $("job-links").replaceChildren(...links);
  $("job-links").hidden = links.length === 0;
}

// Every field of the error, `param` included: which field to fix is what a user needs most.
function renderError(error) {
  $("job-error").hidden = !error;
  if (!error) return $("job-error").replaceChildren();
  const head = el("strong", { textContent: `${error.type === "system" ? "System" : "User"} error ${error.code}` });
  const rows = [el("div", {}, head, `: ${error.message}`)];
  if (error.param) rows.push(el("div", { className: "param" }, "field: ", el("code", { textContent: error.param })));
  // Other fields as they come (a `retryable: false` or an empty field says nothing and is left out).
  const rest = Object.entries(error).filter(([key, value]) => !["code", "message", "param", "type"].includes(key) && value !== false && value != null);
  for (const [key, value] of rest) rows.push(el("div", { textContent: `${label(key)}: ${typeof value === "object" ? JSON.stringify(value) : value}` }));
  $("job-error").replaceChildren(...rows);
}

function timeRows(job) {
  const now = Date.now() / 1000;
  const ended = job.finished_at ?? (TERMINAL.has(job.status) ? null : now);
  const rows = [
    ["Created", stamp(job.created_at)],
    ["Started", stamp(job.started_at)],
    ["Finished", stamp(job.finished_at)],
    ["Waited in the queue", duration((job.started_at ?? (job.status === "queued" ? now : null)) - job.created_at)],
    ["Ran for", job.started_at ? duration(ended - job.started_at) + (job.finished_at ? "" : " so far") : "–"],
    ["In all", duration((job.finished_at ?? now) - job.created_at)],
  ];
  if (job.cancel_requested_at) rows.push(["Cancel requested", stamp(job.cancel_requested_at)]);
  if (job.progress.estimated_finish_at && !TERMINAL.has(job.status)) rows.push(["Expected to finish", stamp(job.progress.estimated_finish_at)]);
  return rows;
}

// The spec's leaves as dotted names, in the spec's order: method.alpha 0.5, training.learning_rate 0.001.
function leaves(value, prefix = "") {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([key, inner]) => leaves(inner, prefix ? `${prefix}.${key}` : key));
  }
  return [[prefix, Array.isArray(value) ? JSON.stringify(value) : value === null ? "null" : String(value)]];
}

const pairsTable = (rows) => el("tbody", {}, ...rows.map(([name, value]) => el("tr", {}, el("th", { textContent: name }), el("td", { textContent: value }))));

function renderDetails(job) {
  renderLinks(job);
  renderError(job.error);
  $("job-times").replaceChildren(pairsTable(timeRows(job)));
  const spec = JSON.stringify(job.spec ?? {}, null, 2);
  if ($("job-spec-json").textContent !== spec) {
    $("job-spec-json").textContent = spec;
    $("job-params").replaceChildren(pairsTable(leaves(job.spec ?? {})));
  }
}

function clearDetails() {
  for (const id of ["job-links", "job-error", "job-times", "job-params", "job-spec-json"]) $(id).replaceChildren();
  $("job-links").hidden = $("job-error").hidden = true;
}
