"""A job process uses no more torch threads than the CPUs it may run on: its affinity and cgroup quota."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.cpu_threads import cgroup_cpu_quota, usable_cpus


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def cgroup_v1(root: Path, quota: int, period: int = 100000) -> Path:
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


@pytest.mark.parametrize(("cpu_max", "quota"), [("150000 100000", 1.5), ("max 100000", None)])
def test_the_quota_comes_from_cgroup_v2_cpu_max(tmp_path, cpu_max, quota):
    assert cgroup_cpu_quota(cgroup_v2(tmp_path, cpu_max)) == quota


@pytest.mark.parametrize(("quota_us", "quota"), [(50000, 0.5), (-1, None)])
def test_the_quota_comes_from_cgroup_v1_cfs_files(tmp_path, quota_us, quota):
    assert cgroup_cpu_quota(cgroup_v1(tmp_path, quota_us)) == quota


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpu_quota(tmp_path) is None
    assert usable_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_usable_cpus_round_a_fractional_quota_up_and_never_exceed_the_affinity(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(cgroup_v2(tmp_path / "half", "50000 100000")) == 1
    assert usable_cpus(cgroup_v2(tmp_path / "many", f"{(affinity + 8) * 100000} 100000")) == affinity


def test_a_fresh_process_under_a_one_cpu_quota_runs_torch_on_one_thread(tmp_path):
    root = cgroup_v2(tmp_path, "100000 100000")
    code = (
        "from pathlib import Path; from worker.cpu_threads import limit_torch_threads; "
        f"print(*limit_torch_threads(Path({str(root)!r})))"
    )
    repository = Path(__file__).parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repository
    )
    assert run.stdout.split() == ["1", "1"]  # intra-op and inter-op threads
