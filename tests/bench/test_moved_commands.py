"""The flat `python -m bench.…` commands of the previous release still run the benchmarks that moved."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MOVED = {
    "bench.lm_demo": "bench.lm.demo",
    "bench.lm_loss_memory": "bench.lm.loss_memory",
    "bench.lm_cross_tokenizer": "bench.lm.cross_tokenizer",
    "bench.queue_hygiene": "bench.service.queue_hygiene",
    "bench.api_load": "bench.service.api_load",
    "bench.distill_vs_naive": "bench.naive.distill_vs_naive",
    "bench.teacher_cache_steps": "bench.speed.teacher_cache_steps",
    "bench.teacher_cache": "bench.speed.teacher_cache",
    "bench.mfu": "bench.speed.mfu",
}


@pytest.mark.parametrize("old, new", MOVED.items())
def test_an_old_module_runs_the_main_of_the_new_one(old, new):
    assert importlib.import_module(old).main is importlib.import_module(new).main


def test_the_old_demo_command_still_shows_the_demo_usage():
    run = subprocess.run(
        [sys.executable, "-m", "bench.demo", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "--transfer-rows" in run.stdout
