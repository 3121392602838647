"""Writes a benchmark's result as indented JSON (under `bench/results/` by default) and says where."""

import json
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console


def write_json(path: Path, value: Any) -> None:
    """Write `value` to `path` as indented JSON with a final newline, making its folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def write_result(result: dict[str, Any], out: Path, *, console: Console | None = None) -> None:
    """Write a benchmark's result to `out` and print where it went."""
    write_json(out, result)
    (console or Console()).print(f"Wrote {out}")


def uptime() -> str:
    """`uptime`'s line: how loaded the machine was when a result was taken."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def cpu_facts() -> dict[str, Any]:
    """The processor's model name and the matrix and bf16 flags `lscpu` lists, for a result file."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {
        "model": fields.get("Model name", "").strip(),
        "flags": [flag for flag in flags if flag in {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}],
    }
