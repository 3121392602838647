"""Where the benchmarks run from and write to: the checkout's root and its `bench/results/` folder."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
