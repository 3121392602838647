"""Peak memory and time of a causal LM's output layer and token-level losses, from its last hidden state.

A training step starts this part with the student's last hidden state and its output layer's weight;
the logits are made here. For each vocabulary size and kind of teacher target, a fresh process runs
the response loss (0.5 forward KL at T=1 + 0.5 cross-entropy) and its backward pass three ways:
- whole: logits = F.linear(hidden, weight), then the losses over the whole sequence;
- chunked: the same logits, the losses in chunks over the sequence (the engine's path before the fused
  loss, and still its path where the fused one does not apply);
- fused: `engine.losses.fused_head.fused_head_loss`, the logits made and differentiated a chunk at a
  time, never whole.
All three run under bf16 autocast with float32 weights, as a training step does on a CPU with bf16.
The teacher's targets are an input (its top-k log-probabilities with the tail, as the teacher cache
stores them, or its full logits in bf16). The peak is the rise of the process's resident high-water mark
(Linux VmHWM, reset just before the loss) over what it held before: the hidden states, the weight and
the teacher's targets are not counted; the student's logits, their gradient and the weight's gradient
are. The allocator's free pages are handed back before each run, so memory freed while making the
inputs cannot hide part of the peak. A short sequence runs first, so loading the kernels' code is not
counted; the first full run's peak counts, and time is the median of the runs.
Writes `bench/results/lm_loss_memory.json`.

    python -m bench.lm.loss_memory                 # 2,048 tokens, top-k teacher (a few minutes)
    python -m bench.lm.loss_memory --full          # also full teacher logits and 4 x 2,048 tokens
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.paths import RESULTS
from bench.result_file import write_result

MODES = ("whole", "chunked", "fused")
GIB = 2**30
ALPHA, TEMPERATURE = 0.5, 1.0


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def release_free_memory() -> None:
    """Give the C allocator's free pages back to the system, so memory freed earlier is not reused unseen."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak() -> None:
    """Reset the process's resident-memory high-water mark to its current resident size (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def make_inputs(batch: int, length: int, vocab: int, hidden: int, teacher: str, k: int, seed: int) -> Any:
    """Hidden states, an output layer's weight (logits as sharp as a trained model's) and teacher targets.

    The teacher's logits are made a slice at a time in bf16, so making them never holds a float32 copy.
    """
    import torch

    from engine.losses import topk_teacher_targets

    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, length, hidden, generator=generator).requires_grad_(True)
    weight = (torch.randn(vocab, hidden, generator=generator) * 4 / hidden**0.5).requires_grad_(True)
    labels = torch.randint(0, vocab, (batch, length), generator=generator)
    slices = []
    for start in range(0, length, 64):
        piece = torch.randn(batch, min(64, length - start), vocab, generator=generator) * 4
        slices.append(
            piece.bfloat16() if teacher == "logits" else topk_teacher_targets(piece, k=k, temperature=1)
        )
    if teacher == "logits":
        return states, weight, labels, {"logits": torch.cat(slices, dim=1)}
    return (
        states,
        weight,
        labels,
        {name: torch.cat([part[name] for part in slices], dim=1) for name in slices[0]},
    )


def loss_and_backward(mode: str, states: Any, weight: Any, labels: Any, targets: dict[str, Any]) -> float:
    """One response loss from the hidden states, and its backward pass; the loss's value."""
    import torch
    import torch.nn.functional as F

    from engine.losses import hard_target_loss, soft_target_loss, topk_soft_target_loss
    from engine.losses.chunking import chunk_length
    from engine.losses.fused_head import fused_head_loss

    states.grad = weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if mode == "fused":
            loss = fused_head_loss(
                states,
                weight,
                None,
                labels,
                teacher=targets,
                temperature=TEMPERATURE,
                kd_weight=ALPHA,
                ce_weight=1 - ALPHA,
            ).loss
        else:
            logits = F.linear(states, weight)
            chunk = chunk_length(labels.shape[0], weight.shape[0]) if mode == "chunked" else None
            if "logits" in targets:
                kd = soft_target_loss(logits, targets["logits"], temperature=TEMPERATURE, chunk_size=chunk)
            else:
                fields = (targets["topk_logprobs"], targets["topk_indices"], targets["tail_logprob"])
                kd = topk_soft_target_loss(logits, *fields, temperature=TEMPERATURE, chunk_size=chunk)
            loss = ALPHA * kd + (1 - ALPHA) * hard_target_loss(logits, labels, chunk_size=chunk)
    loss.backward()
    return float(loss.detach())


def measure_one(args: argparse.Namespace, vocab: int, batch: int, teacher: str, mode: str) -> dict[str, Any]:
    """Peak memory above the inputs and median time of the loss's forward and backward, in this process."""
    from engine.losses.chunking import chunk_length
    from engine.losses.fused_head import HEAD_CHUNK_ELEMENTS

    # A short sequence first, so loading the kernels' code is not counted as the loss's memory.
    loss_and_backward(mode, *make_inputs(batch, 16, vocab, args.hidden, teacher, args.top_k, seed=1))
    inputs = make_inputs(batch, args.length, vocab, args.hidden, teacher, args.top_k, seed=0)
    peaks, seconds = [], []
    for _ in range(args.repeats):
        release_free_memory()
        before = status_kib("VmRSS")
        reset_peak()
        start = time.perf_counter()
        loss = loss_and_backward(mode, *inputs)
        seconds.append(time.perf_counter() - start)
        peaks.append(status_kib("VmHWM") - before)
    chunks = {
        "whole": None,
        "chunked": chunk_length(batch, vocab),
        "fused": chunk_length(batch, vocab, elements=HEAD_CHUNK_ELEMENTS["cpu"]),
    }
    return {
        "vocab": vocab,
        "hidden": args.hidden,
        "length": args.length,
        "batch": batch,
        "teacher": teacher if teacher == "logits" else f"top-{args.top_k}",
        "mode": mode,
        "chunk_positions": chunks[mode],
        "logits_gib": round(batch * args.length * vocab * 2 / GIB, 3),
        "peak_gib": round(peaks[0] * 1024 / GIB, 3),
        "seconds": round(statistics.median(seconds), 2),
        "loss": round(loss, 6),
    }


def run_child(args: argparse.Namespace, vocab: int, batch: int, teacher: str, mode: str) -> dict[str, Any]:
    """One measurement in a fresh process, so no other allocation shares its memory."""
    command = [
        sys.executable, "-m", "bench.lm.loss_memory", "--child", mode, "--vocabs", str(vocab),
        "--batches", str(batch), "--teachers", teacher, "--length", str(args.length),
        "--hidden", str(args.hidden), "--top-k", str(args.top_k), "--threads", str(args.threads),
        "--repeats", str(args.repeats),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def report(results: list[dict[str, Any]]) -> None:
    """The table of peaks and times, each as a share of the chunked path's (the engine's before)."""
    from rich.console import Console
    from rich.table import Table

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return row["vocab"], row["batch"], row["teacher"]

    chunked = {key(row): row for row in results if row["mode"] == "chunked"}
    table = Table(title="Output layer + response loss + backward, from the hidden states, bf16 autocast")
    columns = ("vocab", "tokens", "teacher", "mode", "chunk", "logits GiB", "peak GiB", "of chunked")
    for column in (*columns, "seconds", "of chunked "):
        table.add_column(column, justify="right")
    for row in results:
        base = chunked.get(key(row))
        memory = f"{row['peak_gib'] / base['peak_gib']:.0%}" if base else "-"
        speed = f"{row['seconds'] / base['seconds']:.2f}x" if base else "-"
        chunk = str(row["chunk_positions"] or "-")
        cells = [row["vocab"], row["batch"] * row["length"], row["teacher"], row["mode"], chunk]
        cells += [row["logits_gib"], row["peak_gib"], memory, row["seconds"], speed]
        table.add_row(*map(str, cells))
    Console(width=140).print(table)


def options() -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocabs", type=int, nargs="+", default=[32_000, 151_936])
    parser.add_argument("--length", type=int, default=2048, help="Tokens in each sequence.")
    parser.add_argument("--batches", type=int, nargs="+", default=[1], help="Sequences per step.")
    parser.add_argument("--teachers", nargs="+", choices=["topk", "logits"], default=["topk"])
    parser.add_argument("--hidden", type=int, default=896, help="Hidden size (Qwen2-0.5B's: 896).")
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=1, help="Runs of each loss: the first one's peak, the median time."
    )
    parser.add_argument(
        "--full", action="store_true", help="Also full teacher logits, and 4 sequences a step (not whole)."
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "lm_loss_memory.json")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    """Parse the options; measure every case each way, each in its own process; write the JSON."""
    args = options()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        row = measure_one(args, args.vocabs[0], args.batches[0], args.teachers[0], args.child)
        print(json.dumps(row))
        return
    import torch

    from bench.speed.mfu import cpu_description, load_average
    from engine.losses.chunking import CHUNK_ELEMENTS
    from engine.losses.fused_head import HEAD_CHUNK_ELEMENTS

    cases = [
        (vocab, batch, teacher)
        for vocab in args.vocabs
        for batch in args.batches
        for teacher in args.teachers
    ]
    if args.full:
        cases = [
            (vocab, batch, teacher)
            for vocab in args.vocabs
            for batch in (1, 4)
            for teacher in ("topk", "logits")
        ]
    load_before = load_average()
    results = []
    for vocab, batch, teacher in cases:
        for mode in args.modes:
            if mode == "whole" and batch > 1:
                continue  # the whole loss at 4 x 2,048 tokens and 150k needs over 20 GiB
            results.append(run_child(args, vocab, batch, teacher, mode))
    report(results)
    machine = {**cpu_description(), "threads": args.threads, "torch": torch.__version__}
    record = {
        "command": "python -m bench.lm.loss_memory " + " ".join(sys.argv[1:]),
        "chunk_elements": CHUNK_ELEMENTS,
        "head_chunk_elements": HEAD_CHUNK_ELEMENTS,
        "results": results,
        "machine": machine,
        "load_average": {"before": load_before, "after": load_average()},
    }
    write_result(record, args.out)


if __name__ == "__main__":
    main()
