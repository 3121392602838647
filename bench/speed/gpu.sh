#!/usr/bin/env bash
# Benchmarks for a machine with one NVIDIA GPU, in under 5 minutes (docs/benchmarks.md, "On a GPU"):
# tokens/s and bf16 MFU of a BERT-base-sized teacher's forward and a 6-layer student's training step,
# then bench.speed.mfu, with two GPUs or more a 2-GPU DDP and an FSDP run of bench.speed.ddp_scaling, and, where they exist, bench.naive.distill_vs_naive and bench.speed.teacher_cache, all on CUDA.
# Without CUDA it falls back to the CPU with tiny sizes and says so. Writes bench/results/gpu.json.
#
#   bash bench/speed/gpu.sh                                      # PYTHON=... to pick the interpreter
#   bash bench/speed/gpu.sh --tiny --device cpu --out /tmp/gpu.json
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python}"
exec "$python" -m bench.speed.gpu "$@"
