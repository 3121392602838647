"""The follow bar in a real pseudo-terminal: status, steps, epoch and ETA keep their room at 80 and 140
columns, and the metrics take the line below; the end of a job prints teacher, student and control."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from rich.console import Console

from distillery.cli.job_summary import print_summary

DRAW_BAR = """
import time
from rich.console import Console
from distillery.cli.follow import COLUMNS, JobProgress
metrics = ("train loss=0.4123 kd_loss=1.234 ce_loss=0.5678 lr=4.5e-05 | "
           "eval accuracy=0.8812 macro_f1=0.8733 loss=0.3311")
fields = dict(status="running", steps="640/1200", epoch="1.60", eta="12m 30s", metrics=metrics)
with JobProgress(*COLUMNS, console=Console(), auto_refresh=False) as progress:
    task = progress.add_task("job", total=1200, completed=640, **fields)
    progress.refresh()
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal_output(columns: int) -> list[str]:
    """What the bar draws in a pseudo-terminal `columns` wide, as plain lines."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environment = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    environment["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [sys.executable, "-c", DRAW_BAR], stdin=terminal, stdout=terminal, stderr=terminal, env=environment
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(controller)
    text = ANSI.sub("", output.decode("utf-8", "replace")).replace("\r", "\n")
    return [line.rstrip() for line in text.split("\n") if line.strip()]


@pytest.mark.parametrize("columns", [80, 140])
def test_the_bar_keeps_its_fields_whole_and_puts_the_metrics_below(columns: int) -> None:
    lines = terminal_output(columns)

    bar = next(line for line in lines if "running" in line)
    assert all(part in bar for part in ("640/1200", "epoch 1.60", "ETA 12m 30s")), lines
    metrics = next(line for line in lines if "train loss=0.4123" in line)
    assert max(len(line) for line in lines) <= columns
    assert ("eval accuracy=0.8812" in metrics) == (columns >= 140) or metrics.endswith("…")


def test_the_summary_puts_teacher_student_and_control_side_by_side() -> None:
    console = Console(width=100, record=True, force_terminal=False)
    job = {
        "status": "succeeded",
        "result": {
            "retention_split": "test",
            "teacher": {"test": {"accuracy": 0.91, "loss": 0.3}},
            "student": {"test": {"accuracy": 0.90, "loss": 0.33}, "size_on_disk_bytes": 91_000_000},
            "retention": {"accuracy": 0.989},
            "latency": {"speedup": 2.04},
            "control": {"split": "test", "control_metrics": {"accuracy": 0.88}, "gain": {"accuracy": 0.02}},
        },
    }

    print_summary(console, job)

    text = console.export_text()
    header = next(line for line in text.splitlines() if "teacher" in line)
    assert header.split() == ["teacher", "student", "control"]
    assert "0.91" in text and "0.88" in text
    assert "Retention: accuracy 98.9%" in text and "+0.0200" in text and "2.04x" in text
