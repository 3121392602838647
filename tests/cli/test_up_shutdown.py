"""`distillery up` as a user runs it: one banner once the API answers, and Ctrl-C stops everything cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_ports import free_port

pytestmark = pytest.mark.slow
BANNER_SECONDS = 120


def test_ctrl_c_stops_the_api_and_its_workers_without_an_error_line(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DISTILLERY_")}
    env["DISTILLERY_DATA_DIR"] = str(tmp_path / "var")
    port = free_port()
    log = tmp_path / "up.log"
    distillery = Path(sys.executable).parent / "distillery"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(distillery), "up", "--port", str(port)], cwd=tmp_path, env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + BANNER_SECONDS
        while "Ctrl-C stops it" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)  # what a terminal sends on Ctrl-C
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()

    assert code == 0, text
    assert text.count("Ctrl-C stops it") == 1 and f"http://127.0.0.1:{port}/ui/" in text
    assert "ERROR" not in text and "Traceback" not in text, text
    assert text.rstrip().endswith("Distillery stopped.")
