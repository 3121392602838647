// The jobs list: a page at a time through the API's cursor, filtered by status, method and name,
// with a box per row to pick 2 to 5 jobs to compare.
"use strict";

const PAGE_SIZE = 25;
const COMPARE_MAX = 5;
const STATUSES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"];
const METHODS = ["supervised", "response", "gkd", "feature", "attention", "relation", "self", "mutual"];
// cursors[i] is the `after` of page i + 1 (null for the first); picked: the jobs ticked for comparison.
const listState = { cursors: [null], hasMore: false, picked: new Set(), nameTimer: 0 };

function jobFilters() {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const [param, id] of [["status", "filter-status"], ["method", "filter-method"], ["name", "filter-name"]]) {
    const value = $(id).value.trim();
    if (value) params.set(param, value);
  }
  const after = listState.cursors[listState.cursors.length - 1];
  if (after) params.set("after", after);
  return params;
}

const shortTime = (seconds) =>
  new Date(seconds * 1000).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

function progressCell(job) {
  const { step, total_steps: total } = job.progress;
  const share = total ? Math.min(1, step / total) : 0;
  return el(
    "span",
    { className: "progress", title: total ? `step ${step} of ${total}` : "not started" },
    el("progress", { max: 1, value: share }),
    total ? ` ${Math.floor(100 * share)}%` : " –",
  );
}

function pickBox(job) {
  const box = el("input", { type: "checkbox", checked: listState.picked.has(job.id), title: "Pick to compare" });
  box.dataset.pick = job.id;
  box.disabled = !box.checked && listState.picked.size >= COMPARE_MAX;
  box.onclick = (event) => event.stopPropagation();
  box.onchange = () => {
    if (box.checked) listState.picked.add(job.id);
    else listState.picked.delete(job.id);
    showPicked();
  };
  return box;
}

function jobRow(job) {
  const name = el("a", { href: `#${job.id}`, textContent: job.name || job.id, title: job.id });
  const row = el(
    "tr",
    { className: job.id === state.jobId ? "selected" : "" },
    el("td", { className: "pick" }, pickBox(job)),
    el("td", { className: "name" }, name, job.parent_id ? el("small", { textContent: " control" }) : ""),
    el("td", { textContent: job.spec.method?.type ?? "" }),
    el("td", {}, el("span", { className: `status ${job.status}`, textContent: job.status })),
    el("td", {}, progressCell(job)),
    el("td", { className: "created", textContent: shortTime(job.created_at), title: new Date(job.created_at * 1000).toLocaleString() }),
  );
  row.dataset.job = job.id;
  row.onclick = () => (location.hash = job.id);
  return row;
}

function showPicked() {
  const count = listState.picked.size;
  $("compare-picked").disabled = count < 2;
  $("compare-picked").textContent = count ? `Compare ${count} jobs` : "Compare";
  $("clear-picked").hidden = count === 0;
  for (const box of document.querySelectorAll("#job-rows input[data-pick]")) box.disabled = !box.checked && count >= COMPARE_MAX;
}

async function refreshJobs() {
  let query = String(jobFilters());
  let page;
  try {
    page = await getJson(`jobs?${query}`);
  } catch (error) {
    if (error.status !== 422 || listState.cursors.length === 1) throw error;
    listState.cursors = [null]; // the page's cursor job was deleted: back to the newest
    query = String(jobFilters());
    page = await getJson(`jobs?${query}`);
  }
  if (query !== String(jobFilters())) return; // the filters or the page changed meanwhile: the next tick reads them
  listState.hasMore = page.has_more;
  listState.lastId = page.last_id;
  $("job-rows").replaceChildren(...page.data.map(jobRow));
  const filtered = [...jobFilters().keys()].some((key) => !["limit", "after"].includes(key));
  $("no-jobs").hidden = page.data.length > 0;
  $("no-jobs").textContent = filtered ? "No job matches these filters." : $("no-jobs").dataset.empty;
  $("page-number").textContent = `page ${listState.cursors.length}`;
  $("newer").disabled = listState.cursors.length === 1;
  $("older").disabled = !page.has_more;
  showPicked();
}

function turnPage(older) {
  if (older && listState.hasMore) listState.cursors.push(listState.lastId);
  else if (!older && listState.cursors.length > 1) listState.cursors.pop();
  refreshSoon();
}

function filtersChanged() {
  listState.cursors = [null];
  refreshSoon();
}

function initJobsTable() {
  $("filter-status").append(...STATUSES.map((status) => el("option", { value: status, textContent: status })));
  $("filter-method").append(...METHODS.map((method) => el("option", { value: method, textContent: method })));
  $("no-jobs").dataset.empty = $("no-jobs").textContent;
  $("filter-status").onchange = filtersChanged;
  $("filter-method").onchange = filtersChanged;
  $("filter-name").oninput = () => {
    clearTimeout(listState.nameTimer);
    listState.nameTimer = setTimeout(filtersChanged, 300);
  };
  $("job-filters").onsubmit = (event) => event.preventDefault();
  $("older").onclick = () => turnPage(true);
  $("newer").onclick = () => turnPage(false);
  $("compare-picked").onclick = () => (location.hash = `compare=${[...listState.picked].join(",")}`);
  $("clear-picked").onclick = () => {
    listState.picked.clear();
    for (const box of document.querySelectorAll("#job-rows input[data-pick]")) box.checked = false;
    showPicked();
  };
  showPicked();
}
