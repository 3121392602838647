"""The flat `python -m bench.…` commands of the previous release still run the benchmarks that moved."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bench.moved import MOVED

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("old, new", MOVED.items())
def test_an_old_name_is_found_at_the_moved_benchmarks_file(old, new):
    found, moved = importlib.util.find_spec(f"bench.{old}"), importlib.util.find_spec(new)

    assert found is not None and moved is not None and found.origin == moved.origin


@pytest.mark.parametrize("old, option", [("bench.mfu", "--repeats"), ("bench.demo", "--transfer-rows")])
def test_an_old_command_still_runs(old, option):
    run = subprocess.run(
        [sys.executable, "-m", old, "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert option in run.stdout


def test_a_name_that_never_existed_is_still_not_found():
    assert importlib.util.find_spec("bench.no_such_benchmark") is None
