"""Watching a sweep live: its trials table redrawn at each poll, or a line per change in a log."""

import logging
import time
from typing import Any

from rich.console import Console
from rich.live import Live

from distillery.cli.console import say
from distillery.cli.sweep_view import headline, objective_of, sweep_panel, trial_line, trials_table
from distillery.client import SWEEP_TERMINAL_STATUSES, DistilleryClient, DistilleryError

logger = logging.getLogger(__name__)


def follow_sweep(
    client: DistilleryClient, sweep_id: str, console: Console, poll: float = 5.0
) -> dict[str, Any]:
    """Show the sweep's trials until it finishes; returns the finished sweep.

    A terminal gets a live table; anything else (a log file, a pipe) a line per trial that changed.
    """
    sweep = client.get_sweep(sweep_id)
    if console.is_terminal:
        with Live(sweep_panel(sweep), console=console, auto_refresh=False) as live:
            while sweep["status"] not in SWEEP_TERMINAL_STATUSES:
                sweep = _next(client, sweep, poll)
                live.update(sweep_panel(sweep), refresh=True)
        return sweep
    log = ChangeLog(console)
    log.show(sweep)
    while sweep["status"] not in SWEEP_TERMINAL_STATUSES:
        sweep = _next(client, sweep, poll)
        log.show(sweep)
    console.print(trials_table(sweep))
    return sweep


def _next(client: DistilleryClient, sweep: dict[str, Any], poll: float) -> dict[str, Any]:
    """The sweep after `poll` seconds; a failed read keeps the last one until the next poll."""
    time.sleep(poll)
    try:
        return client.get_sweep(sweep["id"])
    except DistilleryError as error:
        logger.info("could not read sweep %s: %s", sweep["id"], error)
        return sweep


class ChangeLog:
    """Prints the headline when it changes and each trial when its state or value changes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.last_headline = ""
        self.seen: dict[Any, tuple[Any, Any]] = {}

    def show(self, sweep: dict[str, Any]) -> None:
        """Print what changed since the last sweep shown."""
        metric = objective_of(sweep).get("metric") or "value"
        for trial in sweep.get("trials") or []:
            key = (trial.get("status"), trial.get("value"))
            if self.seen.get(trial.get("number")) != key:
                self.seen[trial.get("number")] = key
                say(self.console, trial_line(trial, metric))
        line = headline(sweep).plain
        if line != self.last_headline:
            self.last_headline = line
            say(self.console, line, style="bold")
