"""bench/speed/gpu.sh in its CPU fallback: tiny models, the figures it gives on a GPU, nothing else run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_script_falls_back_to_the_cpu_with_tiny_sizes_and_says_so(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run(
        ["bash", "bench/speed/gpu.sh", "--tiny", "--device", "cpu", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "No CUDA device: falling back to the CPU with tiny sizes" in run.stdout

    result = json.loads(out.read_text())
    assert result["cpu_fallback"] and result["tiny"] and result["device"]["type"] == "cpu"
    figures = result["figures"]
    assert figures["precision"] in ("bf16", "fp32") and figures["matmul"]["gflops"] > 0
    batches = figures["batches"]
    assert 0 < batches["real_tokens"] < batches["padded_tokens"]  # lengths vary, so batches carry padding
    assert set(figures["workloads"]) == {"teacher_forward", "student_training_step"}
    for row in figures["workloads"].values():
        # On tiny sizes under load the ratio says little, but it is the useful rate over the matmul rate.
        assert row["tokens_per_second"] > 0 and row["mfu"] > 0
        # The figures are rounded in the JSON (useful GFLOP/s to 0.01, the matmul rate to 0.1, the ratio to
        # 1e-4), so they agree to those roundings: the matmul rate's counts most when it is low (under load).
        matmul = figures["matmul"]["gflops"]
        rounding = (0.005 + row["mfu"] * 0.05) / (matmul - 0.05) + 1e-4
        assert row["mfu"] == pytest.approx(row["useful_gflops"] / matmul, abs=rounding)
    assert [record["status"] for record in result["other_benchmarks"]] == [
        "skipped: CUDA runs only, at full sizes"
    ]
