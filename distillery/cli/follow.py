"""Watching a job live: a progress bar with step, epoch, ETA and the latest metrics."""

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column
from rich.text import Text

from distillery.cli.console import (
    STATUS_STYLES,
    format_duration,
    format_eta,
    format_metrics,
    format_time,
    say,
)
from distillery.cli.control_outcome import pending_control, print_control
from distillery.cli.job_summary import print_summary
from distillery.client import DistilleryClient, DistilleryError

logger = logging.getLogger(__name__)
LOG_LINE_SECONDS = 15.0


@dataclass
class ProgressView:
    """What the progress bar shows for one poll of the job."""

    status: str
    step: int
    total: int | None
    epoch: str
    eta: str
    metrics: str


@dataclass
class LatestMetrics:
    """The most recent train and eval metrics seen in the job's events."""

    by_split: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        """'train loss=0.41 | eval accuracy=0.88', or '' before any metrics arrive."""
        parts = [
            f"{split} {format_metrics(values)}" for split, values in sorted(self.by_split.items()) if values
        ]
        return " | ".join(parts)


def progress_view(job: dict[str, Any], latest: LatestMetrics, now: float) -> ProgressView:
    """The bar's fields from a job object and the metrics seen so far."""
    progress = job.get("progress") or {}
    return ProgressView(
        status=job["status"],
        step=int(progress.get("step") or 0),
        total=progress.get("total_steps") or None,
        epoch=_format_epoch(progress.get("epoch")),
        eta=format_eta(progress.get("estimated_finish_at"), now),
        metrics=latest.summary(),
    )


def _format_epoch(epoch: float | int | None) -> str:
    if epoch is None:
        return "-"
    return f"{epoch:.2f}" if isinstance(epoch, float) else str(epoch)


def note_event(event: dict[str, Any], latest: LatestMetrics) -> str | None:
    """Record a metrics event; return the line worth printing above the bar, if any."""
    data = event.get("data") or {}
    if event.get("type") == "metrics":
        split = str(data.get("split") or "train")
        latest.by_split[split] = dict(data.get("metrics") or {})
        if split == "train":
            return None  # Train metrics arrive often; the bar shows the latest.
        return f"{split} at step {data.get('step')}: {format_metrics(latest.by_split[split])}"
    message = event.get("message")
    if not message:
        return None
    level = str(event.get("level") or "info")
    style = {"warning": "yellow", "error": "red"}.get(level, "dim")
    return f"[{style}]{escape(format_time(event.get('created_at')))}  {escape(str(message))}[/]"


def fixed(width: int) -> Column:
    """A column that keeps its width whatever the metrics take, so the bar never collapses."""
    return Column(width=width, no_wrap=True, overflow="ellipsis")


# Widths for the longest value each takes: `cancelling`, `99999/99999`, `epoch 999.99`, `ETA 23h 59m`.
COLUMNS = (
    TextColumn("{task.fields[status]}", table_column=fixed(10)),
    BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=10)),
    TextColumn("{task.fields[steps]}", justify="right", table_column=fixed(11)),
    TextColumn("epoch {task.fields[epoch]}", table_column=fixed(12)),
    TextColumn("ETA {task.fields[eta]}", table_column=fixed(12)),
)
# The bar's line is at most this wide on a wide terminal; the metrics line below it takes the full width.
BAR_LINE_WIDTH = 100


class JobProgress(Progress):
    """The bar on one line, fixed-width fields and all, and the latest metrics on the line below it."""

    def get_renderables(self) -> Iterable[RenderableType]:
        table = self.make_tasks_table(self.tasks)
        if hasattr(self, "live"):  # the first call comes from the constructor, before there is a console
            table.width = min(self.console.width, BAR_LINE_WIDTH)
        yield table
        for task in self.tasks:
            metrics = str(task.fields.get("metrics") or "")
            if metrics:
                line = Text.from_markup(f"[dim]{metrics}[/]", overflow="ellipsis")
                line.no_wrap = True
                yield line


# The bar is refreshed at least this far apart, even when asked to poll continuously.
MIN_REFRESH_SECONDS = 0.1


class ProgressBar:
    """The live bar of one job: its step, epoch and ETA from the job, its metrics from the events.

    The job is read by a background thread every `poll` seconds while the main thread reads events;
    a lock keeps the two from reading and writing the latest metrics at once.
    """

    def __init__(self, client: DistilleryClient, job_id: str, progress: Progress) -> None:
        self.client, self.job_id, self.progress = client, job_id, progress
        self.latest = LatestMetrics()
        self.lock = threading.Lock()
        self.task = progress.add_task(job_id, total=None, status="", steps="", epoch="-", eta="-", metrics="")
        self.last_line, self.last_printed = "", 0.0

    def note(self, event: dict[str, Any]) -> None:
        """Take in one event; print the line it is worth above the bar."""
        with self.lock:
            line = note_event(event, self.latest)
        if line:
            self.progress.console.print(line, soft_wrap=True)

    def refresh(self, *, final: bool = False) -> dict[str, Any]:
        """Read the job and redraw the bar; returns the job."""
        job = self.client.get_job(self.job_id)
        with self.lock:
            view = progress_view(job, self.latest, time.time())
        style = STATUS_STYLES.get(view.status, "")
        self.progress.update(
            self.task,
            completed=view.step,
            total=view.total,
            status=f"[{style}]{view.status}[/]" if style else view.status,
            steps=f"{view.step}/{view.total}" if view.total else f"step {view.step}",
            epoch=view.epoch,
            eta=view.eta,
            metrics=escape(view.metrics),
        )
        if not self.progress.console.is_terminal:
            # A log file gets no live bar, so it gets a progress line now and then instead.
            line = progress_line(view)
            due = time.monotonic() - self.last_printed >= LOG_LINE_SECONDS
            if final or (line != self.last_line and due):
                self.progress.console.print(escape(line), soft_wrap=True)
                self.last_line, self.last_printed = line, time.monotonic()
        return job

    def keep_refreshing(self, stop: threading.Event, poll: float) -> None:
        """Refresh every `poll` seconds until stopped; a failed read waits for the next one."""
        while not stop.wait(max(poll, MIN_REFRESH_SECONDS)):
            try:
                self.refresh()
            except DistilleryError as error:
                logger.info("could not read job %s: %s", self.job_id, error)


def follow_job(
    client: DistilleryClient, job_id: str, console: Console, poll: float = 2.0, *, wait_control: bool = True
) -> dict[str, Any]:
    """Show the job's progress until it finishes, and its control's until the gain is in; returns the job.

    The events come from the job's event stream, or from polling where the server cannot stream. A job
    whose control still runs when it succeeds gets its gain and verdict only when the control ends, so
    the control's events are followed next, unless `wait_control` is False.
    """
    with JobProgress(*COLUMNS, console=console) as progress:
        bar = ProgressBar(client, job_id, progress)
        bar.refresh()
        stop = threading.Event()
        refresher = threading.Thread(target=bar.keep_refreshing, args=(stop, poll), daemon=True)
        refresher.start()
        try:
            for event in client.iter_events(job_id, follow=True, poll=poll):
                bar.note(event)
            control_id = pending_control(client.get_job(job_id)) if wait_control else None
            if control_id is not None:
                follow_control(client, control_id, progress.console, poll)
        finally:
            stop.set()
            refresher.join()
        return bar.refresh(final=True)


def follow_control(client: DistilleryClient, control_id: str, console: Console, poll: float) -> None:
    """Print a job's control's events until the control ends (and with it the job's gain is written)."""
    say(console, f"The job succeeded; following its control {control_id} for the gain and the verdict")
    latest = LatestMetrics()
    for event in client.iter_events(control_id, follow=True, poll=poll):
        line = note_event(event, latest)
        if line:
            console.print(f"[dim]control[/] {line}", soft_wrap=True)


def progress_line(view: ProgressView) -> str:
    """The bar as one line of text: 'running step 40/120 epoch 1.3 ETA 2m 10s train loss=0.41'."""
    steps = f"step {view.step}/{view.total}" if view.total else f"step {view.step}"
    return " ".join(
        part for part in (view.status, steps, f"epoch {view.epoch}", f"ETA {view.eta}", view.metrics) if part
    )


def print_outcome(console: Console, job: dict[str, Any]) -> None:
    """The final status, how long it took, and what to run next."""
    job_id, status = job["id"], job["status"]
    took = None
    if job.get("started_at") and job.get("finished_at"):
        took = job["finished_at"] - job["started_at"]
    line = f"Job {job_id} {status}" + (f" after {format_duration(took)}" if took is not None else "")
    say(console, line, style=STATUS_STYLES.get(status, ""))
    error = job.get("error")
    if error:
        where = f" ({error['param']})" if error.get("param") else ""
        say(console, f"{error.get('code')}: {error.get('message')}{where}", style="red")
    if status == "succeeded":
        print_summary(console, job)
        print_control(console, job)
        say(console, f"Download the student:  distillery download {job_id}  (into ./student-{job_id})")
        say(console, f"Other artifacts:       distillery download {job_id} --artifact NAME")
