"""Runs `wrk` against one URL for a fixed time and reads its requests, errors and latency percentiles."""

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Called by wrk at the end: one JSON line with what the benchmark needs, instead of parsing its text.
REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
    .. '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one case measured."""

    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str:
    """The wrk executable; the benchmark needs it (Debian: `apt-get install wrk`)."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    return path


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    timeout_seconds: int = 10,
) -> LoadResult:
    """Load `url` with `connections` keep-alive connections for `seconds`; non-2xx/3xx count as errors."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    with tempfile.TemporaryDirectory(prefix="distillery-wrk-") as folder:
        script = Path(folder) / "case.lua"
        script.write_text("\n".join(lines) + "\n" + REPORT_LUA)
        command = [wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
        command += ["--timeout", f"{timeout_seconds}s", "-s", str(script), url]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
    report = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    raw = json.loads(report.removeprefix("RESULT "))
    elapsed = raw["duration_us"] / 1e6
    errors = sum(raw[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        requests=raw["requests"],
        seconds=round(elapsed, 2),
        requests_per_second=round(raw["requests"] / elapsed, 1),
        p50_ms=round(raw["p50_us"] / 1000, 2),
        p99_ms=round(raw["p99_us"] / 1000, 2),
        mean_ms=round(raw["mean_us"] / 1000, 2),
        errors=errors,
    )
