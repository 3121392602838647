"""The burst case of `bench.service.api_load`: many clients at once on one endpoint, and what share fail.

Every connection is opened at the start and kept busy for the whole run, so the API holds as many
requests in flight as there are clients. The wrk timeout is long (30 s), so a slow answer counts in
the latency and only a failed one in the errors: a 503 under a burst is the failure this case is for.
"""

import logging
import os
from pathlib import Path
from typing import Any

from bench.service.wrk_load import run_wrk

BURST_CASE = "burst: GET /v1/jobs?limit=20"
BURST_TIMEOUT_SECONDS = 30
logger = logging.getLogger(__name__)


def run_burst(
    url: str, *, headers: dict[str, str], connections: int, seconds: int, server_pid: int
) -> dict[str, Any]:
    """Load `url` with `connections` clients for `seconds`; throughput, latency and the error rate."""
    cpu_before = cpu_seconds(server_pid)
    outcome = run_wrk(
        url,
        seconds=seconds,
        connections=connections,
        headers=headers,
        timeout_seconds=BURST_TIMEOUT_SECONDS,
    )
    cpu_ms = (cpu_seconds(server_pid) - cpu_before) * 1000 / max(outcome.requests, 1)
    error_rate = outcome.errors / max(outcome.requests, 1)
    logger.info(
        "%-28s %8.1f req/s  p50 %6.2f ms  p99 %7.2f ms  errors %d (%.1f%%)",
        BURST_CASE,
        outcome.requests_per_second,
        outcome.p50_ms,
        outcome.p99_ms,
        outcome.errors,
        100 * error_rate,
    )
    return {
        "url": "/" + url.split("/", 3)[-1],
        **outcome.as_dict(),
        "connections": connections,
        "error_rate": round(error_rate, 4),
        "server_cpu_ms_per_request": round(cpu_ms, 3),
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
