"""Peak memory and time of a causal LM's token-level KD loss over a long sequence: chunked against whole.

For each vocabulary size, a fresh process makes the student's and the teacher's logits for one long
sequence (bf16, as under autocast; random, scaled like a trained model's) and runs the forward-KL
soft-target loss and its backward pass whole (`soft_target_loss` without `chunk_size`) and, in another
process, in chunks over the sequence (the engine's default chunk, `engine.losses.chunking`). The peak is
the process's resident memory high-water mark (Linux VmHWM, reset just before the loss) above what it
held before the loss: the logits themselves are not counted; the gradient of the student's logits is
(both ways need it), and so is memory the C allocator keeps for reuse, as in training. A short sequence
runs first, so loading the kernels' code is not counted. The first full run's peak counts (later runs
start with what the allocator kept from it); time is the median of the runs.
Writes `bench/results/lm_loss_memory.json`.

    python -m bench.lm.loss_memory
    python -m bench.lm.loss_memory --length 4096 --vocabs 32000 151936 --threads 2 --repeats 3
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

MODES = ("whole", "chunked")
GIB = 2**30


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    """Reset the process's resident-memory high-water mark to its current resident size (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def make_logits(batch: int, length: int, vocab: int, seed: int) -> Any:
    """Random bf16 logits, filled a slice at a time so making them never holds a float32 copy of the whole."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    logits = torch.empty(batch, length, vocab, dtype=torch.bfloat16)
    for start in range(0, length, 64):
        piece = logits[:, start : start + 64]
        piece.copy_(torch.randn(piece.shape, generator=generator) * 4)  # as sharp as a trained model's
    return logits


def loss_and_backward(student: Any, teacher: Any, chunk: int | None) -> float:
    """One forward-KL loss over the sequence and its backward pass; the loss's value."""
    from engine.losses import soft_target_loss

    student.grad = None
    loss = soft_target_loss(student, teacher, temperature=1.0, chunk_size=chunk)
    loss.backward()
    return float(loss.detach())


def measure_one(vocab: int, length: int, batch: int, mode: str, repeats: int) -> dict[str, Any]:
    """Peak memory above the logits and median time of the loss's forward and backward, in this process."""
    from engine.losses.chunking import chunk_length

    chunk = chunk_length(batch, vocab) if mode == "chunked" else None
    # A short sequence first, so loading the kernels' code is not counted as the loss's memory.
    warm = make_logits(batch, 8, vocab, seed=2).requires_grad_(True)
    loss_and_backward(warm, make_logits(batch, 8, vocab, seed=3), 4 if chunk else None)
    student = make_logits(batch, length, vocab, seed=0).requires_grad_(True)
    teacher = make_logits(batch, length, vocab, seed=1)
    peaks, seconds = [], []
    for _ in range(repeats):
        student.grad = None
        before = status_kib("VmRSS")
        reset_peak()
        start = time.perf_counter()
        loss = loss_and_backward(student, teacher, chunk)
        seconds.append(time.perf_counter() - start)
        peaks.append(status_kib("VmHWM") - before)
    return {
        "vocab": vocab,
        "length": length,
        "batch": batch,
        "mode": mode,
        "chunk_positions": chunk,
        "logits_gib": round(student.numel() * student.element_size() / GIB, 3),
        "peak_above_logits_gib": round(peaks[0] * 1024 / GIB, 3),
        "seconds": round(statistics.median(seconds), 3),
        "loss": round(loss, 6),
    }


def run_child(vocab: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in a fresh process, so no other allocation shares its memory."""
    command = [
        sys.executable, "-m", "bench.lm.loss_memory", "--child", mode, "--vocabs", str(vocab),
        "--length", str(args.length), "--batch", str(args.batch), "--threads", str(args.threads),
        "--repeats", str(args.repeats),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def report(results: list[dict[str, Any]]) -> None:
    """The table of peaks and times, with each chunked figure as a share of the whole loss's."""
    from rich.console import Console
    from rich.table import Table

    whole = {row["vocab"]: row for row in results if row["mode"] == "whole"}
    table = Table(title="Forward-KL loss + backward, one sequence, bf16 logits")
    columns = (
        "vocab",
        "length",
        "mode",
        "chunk",
        "logits GiB",
        "peak above logits GiB",
        "of whole",
        "seconds",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in results:
        chunk = str(row["chunk_positions"]) if row["chunk_positions"] else "-"
        base = whole.get(row["vocab"])
        share = f"{row['peak_above_logits_gib'] / base['peak_above_logits_gib']:.0%}" if base else "-"
        cells = (row["vocab"], row["length"], row["mode"], chunk, row["logits_gib"])
        table.add_row(*map(str, cells), str(row["peak_above_logits_gib"]), share, str(row["seconds"]))
    Console().print(table)


def main() -> None:
    """Parse the options; measure every vocabulary both ways, each in its own process; write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocabs", type=int, nargs="+", default=[32_000, 151_936])
    parser.add_argument("--length", type=int, default=2048, help="Tokens in the sequence.")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=1, help="Runs of each loss: the first one's peak, the median time."
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "lm_loss_memory.json")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure_one(args.vocabs[0], args.length, args.batch, args.child, args.repeats)))
        return
    import torch

    from bench.speed.mfu import cpu_description, load_average
    from engine.losses.chunking import CHUNK_ELEMENTS

    load_before = load_average()
    results = [run_child(vocab, mode, args) for vocab in args.vocabs for mode in MODES]
    report(results)
    machine = {**cpu_description(), "threads": args.threads, "torch": torch.__version__}
    record = {
        "command": "python -m bench.lm.loss_memory " + " ".join(sys.argv[1:]),
        "chunk_elements": CHUNK_ELEMENTS,
        "results": results,
        "machine": machine,
        "load_average": {"before": load_before, "after": load_average()},
    }
    write_result(record, args.out)


if __name__ == "__main__":
    main()
