"""The peer benchmark for language models: TRL's GKDTrainer against Distillery's `gkd` and `response` jobs.

The LM demo's data and models (`bench.lm.demo`): tweets as chats, a byte-level BPE trained on them, a
4-layer GPT-2 teacher trained here from its config, and a 2-layer student from the same config and
seed on both sides. Both train on the same chats (Distillery is given the eval file, so its default
holdout does not shrink its train set) with the same template, batch, learning rate, linear schedule
with warmup, weight decay, bf16 autocast, thread count and one epoch. Cases:

- off_policy: GKD with lmbda 0, beta 0 (forward KL) on both sides; Distillery's default top-k loss
  against TRL's exact one, its teacher live (one epoch: nothing reads a stored pass twice);
- off_policy_exact: the same with `top_k: exact`, Distillery's loss as exact as TRL's;
- on_policy: the same with lmbda 0.5 (half the batches are the student's samples of 32 tokens);
- response_top_k: Distillery's `response` (alpha 1, forward KL, top_k 64) with its teacher pass
  stored first (`teacher_cache: on`, counted in its time), against TRL's off-policy run.

Each side runs in a process of its own (`bench.lm.vs_trl_sides`), timed from before its models load
to its trained student; tokens/s counts the train chats' real tokens over that time. Both students
are scored by one function: perplexity of the held-out assistant tokens. Writes
`bench/results/lm_vs_trl.json` (`lm_vs_trl_quick.json` without --full).

    python -m bench.lm.vs_trl               # 160 train chats, 10 steps per run (about 11 minutes on
                                            # 2 cores under a load average of 14)
    python -m bench.lm.vs_trl --chats 320   # 20 steps per run, as in docs/benchmarks.md
    python -m bench.lm.vs_trl --full        # 1,600 train chats, 100 steps per run
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from app.cli.quickstart.tweets import write_splits
from bench.lm.assistant_perplexity import chat_tokens, read_chats
from bench.lm.bases import install_base_model
from bench.lm.demo import CHAT_TEMPLATE, TEACHER_BASE, write_chats
from bench.paths import RESULTS
from bench.result_file import uptime, write_json, write_result
from bench.service.queue_hygiene import cpu_model

TEACHER = "gkd-teacher"
# Run order: each TRL run beside the Distillery runs compared with it, under the same load.
RUNS = (
    ("trl", "off_policy"),
    ("distillery", "off_policy"),
    ("distillery", "off_policy_exact"),
    ("distillery", "response_top_k"),
    ("trl", "on_policy"),
    ("distillery", "on_policy"),
)
# The TRL run each Distillery case is measured against.
BASELINE = {
    "off_policy": "off_policy",
    "off_policy_exact": "off_policy",
    "on_policy": "on_policy",
    "response_top_k": "off_policy",
}
SPEED_TARGET, PERPLEXITY_MARGIN = 2.0, 0.02


@dataclass(frozen=True)
class Scale:
    """Data, models and schedule of a run."""

    teacher_rows: int = 1000
    student_rows: int = 160
    eval_rows: int = 64
    test_rows: int = 200
    teacher_epochs: int = 1
    vocab_size: int = 4096
    width: int = 256
    teacher_layers: int = 4
    student_layers: int = 2
    batch_size: int = 16
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_length: int = 96
    new_tokens: int = 32
    epochs: int = 1
    seed: int = 0
    threads: int = 2


FULL = Scale(teacher_rows=4000, student_rows=1600, eval_rows=200, test_rows=1000, teacher_epochs=3)


def prepare(data_dir: Path, scale: Scale, console: Console) -> dict[str, Any]:
    """Chats, the BPE base, and the teacher trained on the teacher's chats; the sides' shared setup."""
    datasets_dir, models = data_dir / "datasets", data_dir / "models"
    splits = write_splits(
        datasets_dir, train_rows=scale.teacher_rows, eval_rows=scale.eval_rows, test_rows=scale.test_rows
    )
    chats = write_chats(splits, datasets_dir)
    student_train = datasets_dir / "chats-student-train.jsonl"
    lines = chats["train"].read_text(encoding="utf-8").splitlines()[: scale.student_rows]
    student_train.write_text("".join(line + "\n" for line in lines))
    base = models / TEACHER_BASE
    if not (models / TEACHER / "config.json").is_file():
        install_base_model(
            chats["tokenizer"],
            base,
            vocab_size=scale.vocab_size,
            layers=scale.teacher_layers,
            width=scale.width,
        )
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.save_pretrained(base)
        console.print(f"training the {scale.teacher_layers}-layer teacher on {splits.train.rows} chats")
        train_teacher(chats, models, scale)
    return {
        **asdict(scale),
        "models_root": str(models),
        "base": TEACHER_BASE,
        "teacher": TEACHER,
        "train": str(student_train),
        "eval": str(chats["eval"]),
        "test": str(chats["test"]),
    }


def train_teacher(chats: dict[str, Path], models: Path, scale: Scale) -> None:
    """The teacher: a supervised Distillery job from the base config, saved under the models root."""
    from distillery.jobspec import JobSpec
    from engine.run import run_job

    files = {"file-train": chats["train"], "file-eval": chats["eval"]}
    spec = {
        "task": "causal_lm",
        "student": {
            "init": "config",
            "model": {"path": TEACHER_BASE},
            "config": {"num_hidden_layers": scale.teacher_layers},
        },
        "data": {"train_file": "file-train", "eval_file": "file-eval", "format": "chat", "max_length": 96},
        "method": {"type": "supervised"},
        "training": {"epochs": scale.teacher_epochs, "batch_size": 32, "learning_rate": 1e-3, "seed": 0},
        "report": {"generations": 0},
    }
    with tempfile.TemporaryDirectory(prefix="gkd-teacher-") as workdir:
        run_job(
            JobSpec.model_validate(spec),
            workdir=Path(workdir),
            resolve_model=lambda ref: models / str(ref.path),
            resolve_file=lambda file_id: files[file_id],
            device="cpu",
        )
        shutil.copytree(Path(workdir) / "student", models / TEACHER, dirs_exist_ok=True)


def run_side(side: str, case: str, setup_file: Path, out_dir: Path, console: Console) -> dict[str, Any]:
    """One side of one case in its own process; its figures."""
    out = out_dir / f"{side}-{case}.json"
    console.print(f"running {side} {case} ...")
    command = [sys.executable, "-m", "bench.lm.vs_trl_sides", "--side", side, "--case", case]
    subprocess.run([*command, "--setup", str(setup_file), "--out", str(out)], check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def compare(runs: dict[str, dict[str, Any]], tokens: int, epochs: int) -> dict[str, Any]:
    """Each run's tokens/s, and each Distillery case against its TRL run: speed-up and perplexity gap."""
    for figures in runs.values():
        figures["tokens_per_second"] = tokens * epochs / figures["wall_seconds"]
    verdicts = {}
    for case, baseline in BASELINE.items():
        if f"distillery/{case}" not in runs or f"trl/{baseline}" not in runs:
            continue  # left out by --only
        ours, theirs = runs[f"distillery/{case}"], runs[f"trl/{baseline}"]
        speedup = ours["tokens_per_second"] / theirs["tokens_per_second"]
        gap = ours["score"]["perplexity"] / theirs["score"]["perplexity"] - 1
        verdicts[case] = {
            "against": f"trl/{baseline}",
            "speedup": speedup,
            "perplexity_gap": gap,
            "meets_speed": speedup >= SPEED_TARGET,
            "meets_perplexity": gap <= PERPLEXITY_MARGIN,
        }
    return verdicts


def table(runs: dict[str, dict[str, Any]], verdicts: dict[str, Any]) -> Table:
    """Every run, with the speed-up and perplexity gap of each Distillery case over its TRL run."""
    grid = Table(title="TRL GKDTrainer against Distillery (one epoch, the same chats, bf16)")
    for column in (
        "run",
        "wall s",
        "tokens/s",
        "speed-up",
        "ppl",
        "ppl gap",
        "peak RSS MB",
        "cache B/token",
        "pre-pass s",
        "on-policy",
    ):
        grid.add_column(column, justify="left" if column == "run" else "right")
    for name, figures in runs.items():
        verdict = verdicts.get(name.split("/")[1]) if name.startswith("distillery/") else None
        cache = figures.get("teacher_cache") or {}
        per_token = cache.get("bytes_per_token")
        grid.add_row(
            name,
            f"{figures['wall_seconds']:.1f}",
            f"{figures['tokens_per_second']:,.0f}",
            f"{verdict['speedup']:.2f}x" if verdict else "-",
            f"{figures['score']['perplexity']:.2f}",
            f"{verdict['perplexity_gap']:+.1%}" if verdict else "-",
            f"{figures['peak_rss_mb']:,.0f}",
            f"{per_token:,.0f}" if per_token else cache.get("status", "-"),
            f"{cache['prepass_seconds']:.1f}" if cache.get("prepass_seconds") else "-",
            str(figures["on_policy_batches"]),
        )
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="1,600 train chats and a teacher of 3 epochs")
    parser.add_argument("--chats", type=int, default=None, help="train chats of each run (steps x 16)")
    parser.add_argument("--only", default=None, help="e.g. trl/off_policy,distillery/off_policy")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the chats and models are kept")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    scale = FULL if args.full else Scale()
    if args.chats is not None:
        scale = replace(scale, student_rows=args.chats)
    name = "lm_vs_trl" if args.full else "lm_vs_trl_quick"
    data_dir = (args.data_dir or Path("var") / name).resolve()
    console = Console(width=160)
    setup = prepare(data_dir, scale, console)
    setup_file = data_dir / "setup.json"
    write_json(setup_file, setup)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(setup["models_root"]) / TEACHER)
    tokens = chat_tokens(tokenizer, read_chats(Path(setup["train"])))
    out_dir = data_dir / "runs"
    wanted = args.only.split(",") if args.only else [f"{side}/{case}" for side, case in RUNS]
    chosen = [(side, case) for side, case in RUNS if f"{side}/{case}" in wanted]
    runs = {f"{side}/{case}": run_side(side, case, setup_file, out_dir, console) for side, case in chosen}
    verdicts = compare(runs, tokens, scale.epochs)
    console.print(table(runs, verdicts))
    result = {
        "command": " ".join(["python -m bench.lm.vs_trl", *sys.argv[1:]]),
        "machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "uptime": uptime()},
        "versions": {name: version(name) for name in ("torch", "transformers", "trl", "accelerate")},
        "scale": asdict(scale),
        "train_tokens": tokens,
        "targets": {"speedup": SPEED_TARGET, "perplexity_margin": PERPLEXITY_MARGIN},
        "runs": runs,
        "verdicts": verdicts,
    }
    write_result(result, args.out or RESULTS / f"{name}.json", console=console)


if __name__ == "__main__":
    main()
