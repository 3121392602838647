"""The causal-LM demo: a small GPT-2 teacher trained on tweets, distilled token by token into 2 layers.

A byte-level BPE tokenizer is trained on the train split, and a GPT-2 config around it is installed as a
base model. Three jobs go through the embedded service: the 4-layer teacher (supervised, from the config),
the 2-layer student with token-level KD from the teacher, and the same 2-layer student with the same seed
and steps but no teacher (the control). Each job keeps its best epoch by eval perplexity; the table
reports perplexity on held-out test tweets. Writes `bench/results/lm_demo.json`.

    python -m bench.lm_demo
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, PreTrainedTokenizerFast

from bench.comparison import Datasets, job_facts, report_rows, reported_split, run_three_jobs, upload
from bench.service import embedded_service
from bench.tweets import write_splits

RESULTS = Path(__file__).resolve().parent / "results"
EOS = "<|endoftext|>"


def install_base_model(train_file: Path, target: Path, *, vocab_size: int, layers: int, width: int) -> None:
    """A BPE tokenizer trained on the train texts and a GPT-2 config sized to it, as a model directory."""
    texts = [json.loads(line)["text"] for line in train_file.read_text(encoding="utf-8").splitlines()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS)
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=width,
        n_layer=layers,
        n_head=width // 64,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        architectures=["GPT2LMHeadModel"],
    )
    target.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(target)
    tokenizer.save_pretrained(target)


def job_specs(base: str, teacher_job: str | None, files: Datasets, args: Any) -> dict[str, Any]:
    """Teacher from the config; student and control share their init (same seed) and differ in the loss."""
    data = {
        "train_file": files.train_file,
        "eval_file": files.eval_file,
        "test_file": files.test_file,
        "text_column": "text",
        "max_length": 64,
    }

    def training(epochs: int) -> dict[str, Any]:
        return {"epochs": epochs, "batch_size": 32, "learning_rate": 1e-3, "warmup_ratio": 0.05, "seed": 0}

    student = {"init": "config", "model": {"path": base}, "config": {"num_hidden_layers": 2}}
    return {
        "teacher": {
            "task": "causal_lm",
            "student": {"init": "config", "model": {"path": base}, "config": {"num_hidden_layers": 4}},
            "data": data,
            "method": {"type": "supervised"},
            "training": training(args.teacher_epochs),
        },
        "distilled": {
            "task": "causal_lm",
            "teacher": {"job": teacher_job},
            "student": student,
            "data": data,
            "method": {"type": "response", "divergence": "forward_kl", "temperature": 1.0, "alpha": 0.8},
            "training": training(args.student_epochs),
        },
        "control": {
            "task": "causal_lm",
            "student": student,
            "data": data,
            "method": {"type": "supervised"},
            "training": training(args.student_epochs),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-rows", type=int, default=12000)
    parser.add_argument(
        "--eval-rows", type=int, default=1000, help="tweets that choose each job's best epoch"
    )
    parser.add_argument("--test-rows", type=int, default=2000, help="held-out tweets the table reports")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path("var/lm-demo"))
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--out", type=Path, default=RESULTS / "lm_demo.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    data_dir = args.data_dir.resolve()
    splits = write_splits(
        data_dir / "datasets", train_rows=args.train_rows, eval_rows=args.eval_rows, test_rows=args.test_rows
    )
    train = splits.train
    base = "gpt2-tweets"
    install_base_model(train.path, data_dir / "models" / base, vocab_size=4096, layers=4, width=256)
    console.print(
        f"Tweets: {train.rows} train, {splits.eval.rows} eval, {splits.test.rows} test; "
        "a 4,096-token BPE tokenizer trained on train"
    )
    downloads = data_dir / "students"
    with embedded_service(data_dir, port=args.port, log_path=data_dir / "service.log") as client:
        files = upload(client, train.path, splits.eval.path, splits.test.path)
        jobs = run_three_jobs(
            client,
            lambda teacher_job: job_specs(base, teacher_job, files, args),
            downloads,
            console,
            prefix="lm-",
        )
    summary = summarize(*jobs)
    summary["command"] = "scripts/demo --lm"
    summary["data"] = {
        "train_rows": train.rows,
        "eval_rows": splits.eval.rows,
        "test_rows": splits.test.rows,
        "seed": 0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    console.print(format_table(summary))


def summarize(teacher: dict[str, Any], distilled: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """Perplexity and size of the three models, from the distilled and control jobs' reports."""
    rows = report_rows(distilled, control)
    split = reported_split(rows)
    perplexity = {name: side[split]["perplexity"] for name, side in rows.items()}
    return {
        "rows": rows,
        "split": split,
        "teacher_perplexity": perplexity["teacher"],
        "student_perplexity": perplexity["distilled student"],
        "control_perplexity": perplexity["control student"],
        "student_beats_control": perplexity["distilled student"] < perplexity["control student"],
        "speedup": distilled["result"]["latency"]["speedup"],
        **job_facts(teacher, distilled, control),
    }


def format_table(summary: dict[str, Any]) -> str:
    """Parameters, perplexity and latency of each model."""
    split = summary["split"]
    header = f"{'model':<18}{'params':>9}{'non-emb':>9}{'perplexity':>12}{'latency ms':>12}   ({split} split)"
    lines = [header, "-" * len(header)]
    for name, side in summary["rows"].items():
        params = side["parameters"]
        lines.append(
            f"{name:<18}{params['total'] / 1e6:>8.2f}M{params['without_embeddings'] / 1e6:>8.2f}M"
            f"{side[split]['perplexity']:>12.2f}{side['latency_ms']:>12.1f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
