"""Samples a running server with `py-spy record` while a case loads it, for the profile behind a figure."""

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sampling(pid: int | None, output: Path | None, *, seconds: int) -> Iterator[None]:
    """Record `pid` to `output` (speedscope JSON) for `seconds` while the block runs; nothing when None."""
    if pid is None or output is None:
        yield
        return
    # Installed beside this interpreter (a virtualenv not on PATH) or on PATH.
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed (pip install py-spy, in the dev extra)")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
    command += ["--format", "speedscope", "--output", str(output), "--nonblocking"]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, stderr = recorder.communicate(timeout=seconds + 60)
        if recorder.returncode != 0:
            raise RuntimeError(f"py-spy failed: {stderr.decode(errors='replace').strip()}")
