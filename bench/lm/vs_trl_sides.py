"""One side of `bench.lm.vs_trl` in a process of its own: TRL's GKDTrainer or a Distillery job, measured.

Both sides build the same student (`engine.models.build_student`, the same config and seed), read the
same teacher, chats, template, batch, learning rate, schedule, precision and thread count, and are
timed from before the models load to the trained student. The score is `assistant_perplexity`.

    python -m bench.lm.vs_trl_sides --side trl --case off_policy --setup setup.json --out trl.json
"""

import argparse
import json
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from bench.lm.assistant_perplexity import assistant_perplexity, read_chats
from bench.lm.time_shares import TimeShares, measured
from bench.result_file import write_json
from distillery.jobspec import JobSpec, ModelRef, StudentSpec
from engine.callbacks import Callbacks
from engine.models import build_student
from engine.training.optimization import seed_everything

SAVED = "saved the student"
# Each case: Distillery's method; TRL runs GKD with the same lmbda and beta (its exact loss).
CASES: dict[str, dict[str, Any]] = {
    "off_policy": {"type": "gkd", "lmbda": 0.0, "beta": 0.0},
    "off_policy_exact": {"type": "gkd", "lmbda": 0.0, "beta": 0.0, "top_k": "exact"},
    # Probes of the quality cost of k, run alone: --side distillery --case off_policy_k64
    "off_policy_k64": {"type": "gkd", "lmbda": 0.0, "beta": 0.0, "top_k": 64},
    "off_policy_k1024": {"type": "gkd", "lmbda": 0.0, "beta": 0.0, "top_k": 1024},
    "on_policy": {"type": "gkd", "lmbda": 0.5, "beta": 0.0},
    "response_top_k": {"type": "response", "divergence": "forward_kl", "alpha": 1.0, "top_k": 64},
}


def student_spec(setup: dict[str, Any]) -> dict[str, Any]:
    """The 2-layer student from the teacher's base config, without dropout (TRL's GKD turns it off)."""
    dropout = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    config = {"num_hidden_layers": setup["student_layers"], **dropout}
    return {"init": "config", "model": {"path": setup["base"]}, "config": config}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (VmHWM: getrusage keeps the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def trl_config(setup: dict[str, Any], method: dict[str, Any], output_dir: str) -> Any:
    """TRL's GKDConfig for the benchmark's shared settings and the case's method."""
    from trl.experimental.gkd import GKDConfig

    return GKDConfig(
        output_dir=output_dir,
        per_device_train_batch_size=setup["batch_size"],
        learning_rate=setup["learning_rate"],
        weight_decay=setup["weight_decay"],
        lr_scheduler_type="linear",
        warmup_steps=setup["warmup_ratio"],
        max_grad_norm=1.0,
        num_train_epochs=setup["epochs"],
        bf16=True,
        use_cpu=True,
        seed=setup["seed"],
        lmbda=method["lmbda"] if method["type"] == "gkd" else 0.0,
        beta=method.get("beta", 0.0),
        temperature=1.0,
        max_new_tokens=setup["new_tokens"],
        max_length=setup["max_length"],
        logging_steps=10_000,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
    )


def run_trl(case: str, setup: dict[str, Any], shares: TimeShares) -> tuple[dict[str, Any], PreTrainedModel]:
    """TRL's GKDTrainer with the case's lmbda and beta; its figures and the trained student."""
    import datasets
    from trl.experimental.gkd import GKDTrainer

    method, models = CASES[case], Path(setup["models_root"])
    calls = {"on_policy": 0}
    original = GKDTrainer.generate_on_policy_outputs

    def counted(*args: Any) -> Any:
        calls["on_policy"] += 1
        return original(*args)

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(models / setup["teacher"])
    tokenizer.pad_token = tokenizer.eos_token
    teacher = AutoModelForCausalLM.from_pretrained(models / setup["teacher"])
    seed_everything(setup["seed"])
    student = build_student(
        StudentSpec.model_validate(student_spec(setup)),
        "causal_lm",
        base_dir=models / setup["base"],
        label2id=None,
        seed=setup["seed"],
        eager=False,
    )
    train = datasets.Dataset.from_list([{"messages": chat} for chat in read_chats(Path(setup["train"]))])
    with tempfile.TemporaryDirectory(prefix="trl-gkd-") as output_dir:
        args = trl_config(setup, method, output_dir)
        trainer = GKDTrainer(
            model=student, teacher_model=teacher, args=args, train_dataset=train, processing_class=tokenizer
        )
        GKDTrainer.generate_on_policy_outputs = staticmethod(counted)  # type: ignore[method-assign]
        try:
            extra = {(GKDTrainer, "generalized_jsd_loss"): "loss"}
            with measured(shares, teacher_layers=setup["teacher_layers"], extra=extra):
                output = trainer.train()
        finally:
            GKDTrainer.generate_on_policy_outputs = staticmethod(original)  # type: ignore[method-assign]
    wall = time.perf_counter() - started
    figures = {
        "wall_seconds": wall,
        "steps": output.global_step,
        "on_policy_batches": calls["on_policy"],
        "train_loss": output.training_loss,
        "peak_rss_mb": peak_rss_mb(),
        "time_shares": shares.summary(wall),
    }
    return figures, trainer.model


class Clock(Callbacks):
    """Notes when the engine saved the student (the end of its training, before its report): the time,
    the time shares and the peak memory then."""

    def __init__(self, shares: TimeShares) -> None:
        self.shares = shares
        self.saved_at: float | None = None
        self.peak_rss_mb = 0.0

    def on_message(self, message: str, level: str = "info") -> None:  # type: ignore[override]
        if message.startswith(SAVED) and self.saved_at is None:
            self.saved_at = time.perf_counter()
            self.shares.freeze()
            self.peak_rss_mb = peak_rss_mb()


def distillery_spec(case: str, setup: dict[str, Any]) -> dict[str, Any]:
    """The Distillery job of the case: the same data, schedule and precision; the spec's eval file."""
    method = dict(CASES[case])
    if method["type"] == "gkd":
        method.update(temperature=1.0, generation={"max_new_tokens": setup["new_tokens"], "temperature": 1.0})
    else:
        method.update(temperature=1.0)
    return {
        "task": "causal_lm",
        "teacher": {"path": setup["teacher"]},
        "student": student_spec(setup),
        "data": {
            "train_file": "file-train",
            "eval_file": "file-eval",
            "format": "chat",
            "max_length": setup["max_length"],
        },
        "method": method,
        "training": {
            "epochs": setup["epochs"],
            "batch_size": setup["batch_size"],
            "learning_rate": setup["learning_rate"],
            "weight_decay": setup["weight_decay"],
            "warmup_ratio": setup["warmup_ratio"],
            "lr_scheduler": "linear",
            "seed": setup["seed"],
            "precision": "bf16",
            # The response case stores its teacher's top-k first, to measure the cache; gkd runs as auto.
            "teacher_cache": "on" if method["type"] == "response" else "auto",
        },
        "report": {"generations": 0},
    }


def run_distillery(
    case: str, setup: dict[str, Any], shares: TimeShares
) -> tuple[dict[str, Any], PreTrainedModel]:
    """The engine runs the job as a worker does, with a fresh teacher cache; its figures and student."""
    import engine.methods.gkd as gkd
    import engine.methods.response as response
    from engine.run import run_job
    from engine.teacher_cache import TeacherCacheConfig

    models, files = Path(setup["models_root"]), {"file-train": setup["train"], "file-eval": setup["eval"]}
    resolve_model: Callable[[ModelRef], Path] = lambda ref: models / str(ref.path)  # noqa: E731
    clock = Clock(shares)
    with tempfile.TemporaryDirectory(prefix="distillery-gkd-") as scratch:
        workdir = Path(scratch) / "job"
        extra = {
            (gkd, "gkd_loss"): "loss",
            (response, "response_loss"): "loss",
            (gkd, "token_targets"): "teacher top-k",
            (response, "response_targets"): "teacher top-k",
        }
        started = time.perf_counter()
        with measured(shares, teacher_layers=setup["teacher_layers"], extra=extra):
            result = run_job(
                JobSpec.model_validate(distillery_spec(case, setup)),
                workdir=workdir,
                resolve_model=resolve_model,
                resolve_file=lambda file_id: Path(files[file_id]),
                callbacks=clock,
                device="cpu",
                teacher_cache=TeacherCacheConfig(Path(scratch) / "teacher-cache"),
            )
            wall = (clock.saved_at or time.perf_counter()) - started
        student = AutoModelForCausalLM.from_pretrained(workdir / "student")
        shutil.rmtree(workdir, ignore_errors=True)
    training = result.report["training"]
    cache = training.get("teacher_cache") or {}
    figures = {
        "wall_seconds": wall,
        "steps": training["steps"],
        "on_policy_batches": training.get("on_policy_batches", 0),
        "train_examples": training["train_examples"],
        "peak_rss_mb": clock.peak_rss_mb,
        "teacher_cache": {
            "status": cache.get("status"),
            "reason": cache.get("reason"),
            "bytes": cache.get("bytes", 0),
            "tokens": cache.get("tokens", 0),
            "bytes_per_token": cache["bytes"] / cache["tokens"] if cache.get("tokens") else None,
            "prepass_seconds": cache.get("seconds", 0.0),
        },
        "time_shares": shares.summary(wall),
    }
    return figures, student


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", choices=["trl", "distillery"], required=True)
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--setup", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    setup = json.loads(args.setup.read_text())
    torch.set_num_threads(setup["threads"])
    runner = run_trl if args.side == "trl" else run_distillery
    figures, student = runner(args.case, setup, TimeShares())
    tokenizer = AutoTokenizer.from_pretrained(Path(setup["models_root"]) / setup["teacher"])
    figures["score"] = assistant_perplexity(student.float(), tokenizer, read_chats(Path(setup["test"])))
    write_json(args.out, figures)


if __name__ == "__main__":
    main()
