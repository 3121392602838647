"""The engine's entry point: run one job spec from data and models to a saved student and its report."""

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillery.spec import JobSpec, ModelRef
from distillery.spec.methods import SequenceLevelKD
from worker.engine.batching import eval_batch_order, eval_batch_size, iterate_batches, longest_batch
from worker.engine.callbacks import Callbacks
from worker.engine.compilation import compiled_forward
from worker.engine.curves import MetricsLog, plot_curves
from worker.engine.data import (
    PreparedData,
    add_generated_examples,
    causal_lm_prompts,
    prepare_data,
)
from worker.engine.errors import UserError
from worker.engine.evaluation import evaluate
from worker.engine.methods import MethodContext, get_method_class
from worker.engine.methods.response import generate_continuations
from worker.engine.models import (
    build_student,
    check_compatibility,
    count_parameters,
    load_teacher,
    load_tokenizer,
    student_factory,
)
from worker.engine.optimization import seed_everything
from worker.engine.precision import choose_precision, describe_choice
from worker.engine.report import build_report
from worker.engine.trainer import train

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: its status, the saved student, the report and the files to publish."""

    status: Literal["succeeded", "cancelled"]
    student_dir: Path | None
    report: dict[str, Any]
    outputs: list[Path] = field(default_factory=list)


def _millions(model: torch.nn.Module) -> str:
    return f"{count_parameters(model)['total'] / 1e6:.1f}M parameters"


def run_job(
    spec: JobSpec,
    *,
    workdir: Path,
    resolve_model: Callable[[ModelRef], Path],
    resolve_file: Callable[[str], Path],
    callbacks: Callbacks | None = None,
    device: str | None = None,
) -> RunResult:
    """Train the student `spec` describes; resume from `workdir/checkpoints/` if a checkpoint is there."""
    callbacks = callbacks or Callbacks()
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workdir.mkdir(parents=True, exist_ok=True)
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="distillery-data-") as cache_dir:
        return _run(
            spec,
            workdir=workdir,
            resolve_model=resolve_model,
            resolve_file=resolve_file,
            callbacks=callbacks,
            device=target,
            cache_dir=Path(cache_dir),
        )


def _run(
    spec: JobSpec,
    *,
    workdir: Path,
    resolve_model: Callable[[ModelRef], Path],
    resolve_file: Callable[[str], Path],
    callbacks: Callbacks,
    device: torch.device,
    cache_dir: Path,
) -> RunResult:
    task, training = spec.task, spec.training
    precision = choose_precision(training.precision, device)  # refuses an unsupported bf16 before any work
    callbacks.on_message(describe_choice(precision))
    seed_everything(training.seed)
    method_class = get_method_class(spec.method.type)
    eager = method_class.needs_eager_attention
    teacher_dir = resolve_model(spec.teacher) if spec.teacher is not None else None
    base_dir = resolve_model(spec.student.model) if spec.student.model is not None else teacher_dir
    if base_dir is None:
        raise UserError("the student needs 'student.model' or a teacher to start from", param="student.model")
    tokenizer = load_tokenizer(base_dir)

    teacher = None
    if method_class.needs_teacher:
        if teacher_dir is None:
            raise UserError(f"method {spec.method.type!r} needs a teacher", param="teacher")
        teacher = load_teacher(teacher_dir, task, eager=eager, device=device)
        callbacks.on_message(f"loaded teacher ({_millions(teacher)})")
    data = prepare_data(
        spec.data,
        task,
        tokenizer,
        seed=training.seed,
        resolve_file=resolve_file,
        cache_dir=cache_dir,
        teacher_id2label=teacher.config.id2label if teacher is not None and task != "causal_lm" else None,
    )
    test_note = f" and {len(data.test)} test" if data.test is not None else ""
    callbacks.on_message(f"loaded data: {len(data.train)} train, {len(data.eval)} eval{test_note} examples")
    if teacher is not None and teacher_dir is not None:
        teacher_tokenizer = tokenizer if teacher_dir == base_dir else load_tokenizer(teacher_dir)
        check_compatibility(
            task=task,
            teacher=teacher,
            teacher_tokenizer=teacher_tokenizer,
            student_tokenizer=tokenizer,
            label2id=data.label2id,
        )
        sequence_level = getattr(spec.method, "sequence_level", None)
        if sequence_level is not None and task == "causal_lm":
            data = _add_teacher_continuations(spec, sequence_level, data, teacher, tokenizer, callbacks)

    student = build_student(
        spec.student, task, base_dir=base_dir, label2id=data.label2id, seed=training.seed, eager=eager
    ).to(device)
    callbacks.on_message(f"built student ({_millions(student)}, init {spec.student.init})")
    new_student = student_factory(
        spec.student, task, base_dir=base_dir, label2id=data.label2id, eager=eager, device=device
    )
    context = MethodContext(
        task=task,
        student=student,
        teacher=teacher,
        new_student=new_student,
        num_labels=len(data.label2id) if data.label2id is not None else None,
    )
    method = method_class(spec.method, context).to(device)

    metrics_log = MetricsLog(workdir / "metrics.jsonl")
    if training.compile:
        callbacks.on_message("compiling the student's forward (torch.compile): the first steps take longer")
    with compiled_forward(student, enabled=training.compile):
        result = train(
            method,
            data,
            training=training,
            device=device,
            precision=precision,
            checkpoint_dir=workdir / "checkpoints",
            metrics_log=metrics_log,
            callbacks=callbacks,
        )
    if result.status == "cancelled":
        return RunResult(
            "cancelled", None, {"status": "cancelled", "steps": result.state.step}, [metrics_log.path]
        )

    exported = method.export_model()
    student_dir = workdir / "student"
    exported.save_pretrained(student_dir)
    tokenizer.save_pretrained(student_dir)
    callbacks.on_message(f"saved the student ({_millions(exported)})")

    autocast = precision.autocast
    batch_size = eval_batch_size(
        task, batch_size=training.batch_size, eval_batch_size=training.eval_batch_size
    )
    splits = {"eval": data.eval} if data.test is None else {"eval": data.eval, "test": data.test}

    def measure(model: torch.nn.Module) -> dict[str, dict[str, float]]:
        """The model's metrics on the eval set and, when there is one, the test set."""
        metrics = {}
        for split, dataset in splits.items():
            order = eval_batch_order(list(dataset["length"]), batch_size)
            batches = iterate_batches(dataset, order, pad_token_id=data.pad_token_id)
            metrics[split] = evaluate(model, batches, task=task, device=device, autocast=autocast)
        return metrics

    student_metrics = measure(exported)
    if teacher is None and teacher_dir is not None:
        teacher = _teacher_for_comparison(teacher_dir, task, tokenizer, data, device, callbacks)
    teacher_metrics = measure(teacher) if teacher is not None else None
    # The latency batch stays the training batch (or the spec's eval batch), as reports have always shown.
    latency_size = training.eval_batch_size or training.batch_size
    latency_batch = longest_batch(data.eval, latency_size, pad_token_id=data.pad_token_id)
    report = build_report(
        task=task,
        method=spec.method.type,
        student=exported,
        student_dir=student_dir,
        student_metrics=student_metrics,
        teacher=teacher,
        teacher_dir=teacher_dir if teacher is not None else None,
        teacher_metrics=teacher_metrics,
        latency_batch=latency_batch,
        autocast=autocast,
        training={
            "steps": result.state.step,
            "best_step": result.state.best_step,
            "precision": precision.precision,
            "precision_reason": precision.reason,
            "device": str(device),
            "seed": training.seed,
            "train_examples": len(data.train),
            "eval_examples": len(data.eval),
            "test_examples": len(data.test) if data.test is not None else None,
        },
    )
    report_path = workdir / "report.json"
    report_path.write_text(json.dumps(report, indent=2))
    curves_path = plot_curves(
        metrics_log.read(), workdir / "curves.png", title=f"{spec.method.type} ({task})"
    )
    _announce_result(report, callbacks)
    return RunResult("succeeded", student_dir, report, [report_path, curves_path, metrics_log.path])


def _add_teacher_continuations(
    spec: JobSpec,
    settings: SequenceLevelKD,
    data: PreparedData,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    callbacks: Callbacks,
) -> PreparedData:
    """Sequence-level KD: the teacher continues every train prompt and the results join the train set."""
    prompts = causal_lm_prompts(data.train, settings.prompt_tokens, tokenizer.eos_token_id)
    continuations = generate_continuations(
        teacher,
        prompts,
        settings,
        pad_token_id=data.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        batch_size=spec.training.eval_batch_size or spec.training.batch_size,
        seed=spec.training.seed,
    )
    room = [max(0, spec.data.max_length - len(prompt)) for prompt in prompts]
    continuations = [tokens[:limit] for tokens, limit in zip(continuations, room, strict=True)]
    before = len(data.train)
    data.train = add_generated_examples(data.train, prompts, continuations)
    callbacks.on_message(f"sequence-level KD: added {len(data.train) - before} teacher-generated examples")
    return data


def _teacher_for_comparison(
    teacher_dir: Path,
    task: str,
    tokenizer: PreTrainedTokenizerBase,
    data: PreparedData,
    device: torch.device,
    callbacks: Callbacks,
) -> PreTrainedModel | None:
    """A teacher named by a method that trains without one, loaded after training for the report only."""
    try:
        teacher = load_teacher(teacher_dir, task, eager=False, device=device)
        check_compatibility(
            task=task,
            teacher=teacher,
            teacher_tokenizer=load_tokenizer(teacher_dir),
            student_tokenizer=tokenizer,
            label2id=data.label2id,
        )
    except UserError as error:
        callbacks.on_message(f"the teacher is not compared in the report: {error.message}", "warning")
        return None
    return teacher


def _announce_result(report: dict[str, Any], callbacks: Callbacks) -> None:
    student = report["student"]
    line = "; ".join(
        f"student {split} " + ", ".join(f"{name} {value:.4f}" for name, value in student[split].items())
        for split in ("eval", "test")
        if student[split]
    )
    speedup = report["latency"]["speedup"]
    if speedup is not None:
        line += f"; {speedup:.1f}x faster than the teacher"
    callbacks.on_message(line)
