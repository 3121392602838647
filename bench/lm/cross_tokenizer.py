"""Cross-tokenizer distillation on tweets: a byte-level BPE teacher, a SentencePiece-style BPE student.

Two tokenizers are trained on the train tweets: the teacher's a GPT-2-style byte-level BPE, the student's
a BPE over Metaspace pieces ("▁word", as Llama-2 and T5 tokenize), so no token string is spelt alike in
both. Three jobs go through the embedded service: the 4-layer teacher (supervised, from its config), the
control (the 2-layer student on its own tokenizer, no teacher) and the ULD student (the same init, seed
and steps, `cross_tokenizer: uld` from the teacher job), whose report measures all three on the held-out
test tweets: perplexity in each model's own tokens, bits per byte of the same text, top-1 agreement with
the teacher and tokens/s, and their continuations of a few test prompts. Writes
`bench/results/lm_cross_tokenizer.json`.

    python -m bench.lm.cross_tokenizer            # the full run
    python -m bench.lm.cross_tokenizer --quick    # 3,000 train tweets, 1 epoch each: a few minutes
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from app.cli.quickstart.comparison import Datasets, job_seconds, run_to_end, upload
from app.cli.quickstart.service import embedded_service
from app.cli.quickstart.tweets import write_splits
from bench.lm.bases import install_base_model, install_metaspace_base
from bench.paths import RESULTS
from bench.result_file import write_result

ROLES = ("teacher", "student", "control")


def job_specs(teacher_base: str, student_base: str, files: Datasets, args: Any) -> dict[str, Any]:
    """Teacher from its config; control and ULD student share the student's init, seed and steps."""
    data = {
        "train_file": files.train_file,
        "eval_file": files.eval_file,
        "test_file": files.test_file,
        "text_column": "text",
        "max_length": 64,
    }

    def training(epochs: int) -> dict[str, Any]:
        return {"epochs": epochs, "batch_size": 32, "learning_rate": 1e-3, "warmup_ratio": 0.05, "seed": 0}

    student = {"init": "config", "model": {"path": student_base}, "config": {"num_hidden_layers": 2}}
    teacher = {"init": "config", "model": {"path": teacher_base}, "config": {"num_hidden_layers": 4}}
    return {
        "teacher": {
            "task": "causal_lm",
            "student": teacher,
            "data": data,
            "method": {"type": "supervised"},
            "training": training(args.teacher_epochs),
        },
        "control": {
            "task": "causal_lm",
            "student": student,
            "data": data,
            "method": {"type": "supervised"},
            "training": training(args.student_epochs),
        },
        "distilled": {
            "task": "causal_lm",
            "student": student,
            "data": data,
            "method": {
                "type": "response",
                "cross_tokenizer": "uld",
                "hybrid": args.hybrid,
                "temperature": 1.0,
                "alpha": args.alpha,
            },
            "report": {"generations": 3, "max_new_tokens": 20},
            "training": training(args.student_epochs),
        },
    }


def summarize(jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ULD job's language-model section and how long each job ran."""
    report = jobs["distilled"]["result"]
    section = report["language_model"]
    return {
        "language_model": section,
        "retention": report["retention"],
        "student_beats_control_bits_per_byte": section["student"]["bits_per_byte"]
        < section["control"]["bits_per_byte"],
        "jobs": {name: job["id"] for name, job in jobs.items()},
        "seconds": {name: job_seconds(job) for name, job in jobs.items()},
    }


def format_table(section: dict[str, Any]) -> str:
    """Perplexity, bits per byte, agreement and rates of the three models, then the generations."""
    header = (
        f"{'model':<9}{'vocab':>7}{'ppl':>9}{'bits/byte':>11}"
        + f"{'top-1 agree':>13}{'tok/s':>10}{'gen tok/s':>11}"
    )
    lines = [f"{section['split']} split, aligned positions {section['aligned_fraction']:.1%}", header]
    tokenizers = section["tokenizers"]
    for role in ROLES:
        row = section[role]
        agreement = row.get("top1_agreement")
        vocab = tokenizers["teacher" if role == "teacher" else "student"]["vocabulary"]
        lines.append(
            f"{role:<9}{vocab:>7}{row['perplexity']:>9.2f}{row['bits_per_byte']:>11.3f}"
            f"{'' if agreement is None else f'{agreement:.3f}':>13}"
            f"{row['tokens_per_second']:>10.0f}{row['generation_tokens_per_second']:>11.1f}"
        )
    for sample in section["generations"]:
        lines.append(f"prompt {sample['prompt']!r}")
        lines.extend(f"  {role:<8}{sample[role]!r}" for role in ROLES)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3,000 train tweets and one epoch per job")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the ULD term (1 - alpha: CE)")
    parser.add_argument("--hybrid", action="store_true", help="match shared tokens one to one")
    parser.add_argument("--teacher-job", help="reuse this succeeded teacher job of the same data directory")
    parser.add_argument("--control-job", help="reuse this succeeded control job of the same data directory")
    parser.add_argument("--data-dir", type=Path, default=Path("var/lm-cross-tokenizer"))
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    train_rows, args.teacher_epochs, args.student_epochs = (3000, 1, 1) if args.quick else (12000, 3, 2)
    out = args.out or RESULTS / ("lm_cross_tokenizer_quick.json" if args.quick else "lm_cross_tokenizer.json")
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    data_dir = args.data_dir.resolve()
    splits = write_splits(data_dir / "datasets", train_rows=train_rows, eval_rows=500, test_rows=1000)
    install_base_model(
        splits.train.path, data_dir / "models" / "gpt2-bytes", vocab_size=4096, layers=4, width=256
    )
    install_metaspace_base(
        splits.train.path, data_dir / "models" / "gpt2-pieces", vocab_size=3072, layers=4, width=256
    )
    with embedded_service(data_dir, port=args.port, log_path=data_dir / "service.log") as client:
        files = upload(client, splits.train.path, splits.eval.path, splits.test.path)
        specs = job_specs("gpt2-bytes", "gpt2-pieces", files, args)
        downloads = data_dir / "students"
        jobs = {}
        for role in ("teacher", "control"):
            reused = getattr(args, f"{role}_job")
            if reused:
                jobs[role] = client.get_job(reused)
            else:
                jobs[role] = run_to_end(client, specs[role], f"xtok-{role}", downloads, console)
        distilled = {**specs["distilled"], "teacher": {"job": jobs["teacher"]["id"]}}
        distilled["report"]["control"] = {"job": jobs["control"]["id"]}
        jobs["distilled"] = run_to_end(client, distilled, "xtok-uld", downloads, console)
    summary = summarize(jobs)
    summary["command"] = " ".join(["python -m bench.lm.cross_tokenizer", *sys.argv[1:]])
    summary["data"] = {
        "train_rows": splits.train.rows,
        "eval_rows": splits.eval.rows,
        "test_rows": splits.test.rows,
    }
    console.print(format_table(summary["language_model"]))
    write_result(summary, out, console=console)


if __name__ == "__main__":
    main()
