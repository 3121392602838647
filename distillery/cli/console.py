"""Consoles and the small formatters every command's output shares."""

import json
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.text import Text

STATUS_STYLES = {
    "queued": "cyan",
    "running": "blue",
    "cancelling": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
}


def stdout() -> Console:
    """A console on standard output, built per use so it follows the current terminal and COLUMNS."""
    return Console(highlight=False)


def stderr() -> Console:
    """A console on standard error, for messages that are not the command's result."""
    return Console(stderr=True, highlight=False)


def say(console: Console, text: str, style: str = "") -> None:
    """Print plain text (no markup) on one line per newline, so commands stay copy-pastable."""
    console.print(text, style=style, markup=False, soft_wrap=True)


def print_error(message: str) -> None:
    """One red line on standard error, never wrapped."""
    say(stderr(), f"Error: {message}", style="red")


def status_text(status: str) -> Text:
    """A job status coloured by what it means."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def format_time(timestamp: float | None) -> str:
    """Unix seconds as local 'YYYY-MM-DD HH:MM:SS', or '-'."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def format_age(timestamp: float | None, now: float | None = None) -> str:
    """How long ago, as '45s ago', '12m ago', '3h ago' or '5d ago': narrow enough for a table."""
    if timestamp is None:
        return "-"
    elapsed = max(0, int((time.time() if now is None else now) - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if elapsed >= size:
            return f"{elapsed // size}{unit} ago"
    return f"{elapsed}s ago"


def format_duration(seconds: float | None) -> str:
    """A duration as '1h 02m', '3m 20s' or '45s'."""
    if seconds is None:
        return "-"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_eta(finish_at: float | None, now: float | None = None) -> str:
    """The time left until an estimated finish, or '-' when there is no estimate yet."""
    if finish_at is None:
        return "-"
    return format_duration(finish_at - (time.time() if now is None else now))


def format_value(value: Any) -> str:
    """A scalar for a table: floats to four significant digits, containers as compact JSON."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """Metrics as 'loss=0.4123 accuracy=0.875'."""
    return " ".join(f"{name}={format_value(value)}" for name, value in metrics.items())


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as (dotted key, value) pairs, for a two-column listing."""
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{dotted}.")
        else:
            yield dotted, value
