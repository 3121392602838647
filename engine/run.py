"""The engine's entry point: run one job spec from data and models to a saved student and its report."""

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillery.jobspec import JobSpec, ModelRef
from engine.batching import epoch_batch_order
from engine.callbacks import Callbacks
from engine.compilation import compiled_forward
from engine.curves import MetricsLog, plot_curves
from engine.data import (
    PreparedData,
    prepare_data,
)
from engine.distributed.callbacks import MainRankCallbacks
from engine.distributed.choice import choose_parallelism
from engine.distributed.process_group import process_group
from engine.distributed.ranks import SINGLE, Ranks
from engine.distributed.sharded_checkpoint import full_state_on_main
from engine.distributed.wrap import Parallelism
from engine.errors import UserError
from engine.final_evaluation import FinalEvaluation, announce_result, teacher_for_comparison
from engine.frozen_embeddings import freeze_input_embeddings
from engine.lm.packed_attention import batch_readers, describe_packing, packed_attention, packing_summary
from engine.lm.packing import Packing
from engine.lm.report import LanguageModels
from engine.lora import add_lora, parameter_counts, save_student
from engine.methods import MethodContext, method_class_for
from engine.methods.base import Method
from engine.methods.teacher import TeacherMethod
from engine.models import (
    auto_model_class,
    build_student,
    check_compatibility,
    count_parameters,
    load_config,
    load_teacher,
    load_tokenizer,
    student_factory,
)
from engine.report import parallel_summary
from engine.teacher_cache import (
    CacheOutcome,
    StoredOutputs,
    TeacherCacheConfig,
    prepare_teacher_outputs,
)
from engine.teacher_cache.outputs import example_hashes
from engine.training.checkpointing import TrainState
from engine.training.loop import TrainResult, planned_examples, train
from engine.training.optimization import seed_everything
from engine.training.precision import PrecisionChoice, choose_precision, describe_choice

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: its status, the saved student, the report and the files to publish.

    Over several processes only rank 0's result has the student, the report and the outputs; every
    other rank returns the status with `student_dir` None, a report of its status, steps and rank, and
    no outputs.
    """

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
    teacher_cache: TeacherCacheConfig | None = None,
) -> RunResult:
    """Train the student `spec` describes; resume from `workdir/checkpoints/` if a checkpoint is there.

    Teacher outputs are stored under `teacher_cache.root` and shared across jobs; without one they are
    kept for this run only. Launched by torchrun (WORLD_SIZE > 1) every rank calls it with the same
    spec and workdir: it starts the process group (NCCL on CUDA device LOCAL_RANK, else gloo), trains
    over every rank and destroys the group before it returns or raises. Only rank 0 calls `callbacks`
    (rank 0's `should_stop` answer reaches every rank) and writes into `workdir`, except DCP shards.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    datasets.disable_progress_bars()
    with (
        process_group(device) as (ranks, target),
        tempfile.TemporaryDirectory(prefix="distillery-data-") as scratch_dir,
    ):
        caller = callbacks or Callbacks()
        job = JobRun(
            spec,
            workdir=workdir,
            resolve_model=resolve_model,
            resolve_file=resolve_file,
            callbacks=MainRankCallbacks(caller, ranks) if ranks.distributed else caller,
            device=target,
            scratch_dir=Path(scratch_dir),
            teacher_cache=teacher_cache or TeacherCacheConfig(),
            ranks=ranks,
        )
        try:
            return job.run()
        finally:
            if ranks.distributed and ranks.is_main:
                shutil.rmtree(job.shared_scratch_dir, ignore_errors=True)


@dataclass
class LoadedModels:
    """The tokenizer, the teacher when the method trains with one, and where each model came from."""

    tokenizer: PreTrainedTokenizerBase
    teacher: PreTrainedModel | None
    teacher_dir: Path | None
    base_dir: Path
    teacher_labels: dict[int, str] | None = None
    teacher_tokenizer: PreTrainedTokenizerBase | None = None


@dataclass
class JobRun:
    """One run of a job spec, in named phases: models, data, method, teacher outputs, training, report."""

    spec: JobSpec
    workdir: Path
    resolve_model: Callable[[ModelRef], Path]
    resolve_file: Callable[[str], Path]
    callbacks: Callbacks
    device: torch.device
    scratch_dir: Path
    teacher_cache: TeacherCacheConfig
    ranks: Ranks = SINGLE
    packing_summary: dict[str, Any] | None = None

    @property
    def shared_scratch_dir(self) -> Path:
        """Scratch space every rank sees (the run's own teacher-cache entry): the workdir over several."""
        return self.workdir / ".shared-scratch" if self.ranks.distributed else self.scratch_dir

    def run(self) -> RunResult:
        """Every phase in order; a cancelled run stops after training.

        Every rank takes the same phases up to the saved student, so an error before training (data,
        models) is raised alike on every rank; rank 0 alone evaluates and reports after training.
        """
        spec, callbacks = self.spec, self.callbacks
        precision = choose_precision(spec.training.precision, self.device)  # refuses bf16 before any work
        callbacks.on_message(describe_choice(precision))
        seed_everything(spec.training.seed)
        method_class = method_class_for(spec.method)
        models = self.load_models(method_class)
        data = self.prepare_data(models)
        if spec.training.epochs:  # an evaluation-only job makes no extra training examples
            data = method_class.extend_train_data(spec, data, models.teacher, models.tokenizer, callbacks)
        self.check_same_train_data(data)
        method = self.build_method(method_class, models, data)
        parallelism = self.choose_parallelism(method, models)
        stored, cache_outcome = self.teacher_outputs(method, models, data, precision)
        metrics_log = MetricsLog(self.workdir / "metrics.jsonl")
        result = self.train(method, data, precision, metrics_log, parallelism)
        if result.status == "cancelled":
            report = {"status": "cancelled", "steps": result.state.step}
            return RunResult("cancelled", None, report, [metrics_log.path] if self.ranks.is_main else [])
        training = self.training_summary(result.state, data, precision, cache_outcome, method, parallelism)
        saved = self.save_student(method, models, parallelism)  # a LoRA student's merge freezes it
        if saved is None:  # not rank 0: its part ends with training
            return RunResult(
                "succeeded",
                None,
                {"status": "succeeded", "steps": result.state.step, "rank": self.ranks.rank},
            )
        student_dir, student = saved
        evaluation = FinalEvaluation(spec, data, self.device, precision, models.tokenizer, method.aligner)
        report = self.report(evaluation, student, models, stored, student_dir, training)
        return self.publish(report, metrics_log, student_dir)

    def check_same_train_data(self, data: PreparedData) -> None:
        """Refuse, on every rank alike, to train when the ranks' train sets differ.

        Every rank reads and tokenizes the same files; a method's own data step (sequence-level KD's
        sampled continuations) runs on each rank with the same seed, which a GPU may not repeat exactly.
        """
        if not self.ranks.distributed:
            return
        digest = hashlib.sha256(b"".join(example_hashes(data.train))).hexdigest()
        if len(set(self.ranks.gather([digest]))) > 1:
            raise UserError(
                "the processes of this job prepared different training data (sampling is not repeatable "
                "on this device); run it on one device",
                param="resources.devices",
            )

    def choose_parallelism(self, method: Method, models: LoadedModels) -> Parallelism:
        """DDP or FSDP over several ranks (said in the log), nothing to choose in one process.

        An evaluation-only job wraps nothing: rank 0 alone measures the models after the common phases.
        """
        if not self.spec.training.epochs:
            return "single"
        parallelism, reason = choose_parallelism(
            self.spec, method.student, models.teacher, self.device, self.ranks
        )
        if self.ranks.distributed:
            batch = self.spec.training.batch_size
            self.callbacks.on_message(
                f"training on {self.ranks.world_size} devices with {parallelism} ({reason}); each takes "
                f"{batch // self.ranks.world_size} examples of every batch of {batch}"
            )
        return parallelism

    def train(
        self,
        method: Method,
        data: PreparedData,
        precision: PrecisionChoice,
        metrics_log: MetricsLog,
        parallelism: Parallelism,
    ) -> TrainResult:
        """The training loop, over the forward compiled when the spec asks, on packed batches if asked.

        An evaluation-only job (epochs 0) takes no step: the student stays as it started.
        """
        if not self.spec.training.epochs:
            self.callbacks.on_message(
                "evaluation only (training.epochs 0): nothing is trained; the starting student and the "
                "teacher are measured"
            )
            if self.ranks.is_main:
                metrics_log.truncate_after(0)  # an empty metrics.jsonl, published as any run's
            return TrainResult("succeeded", TrainState())
        if self.spec.training.compile:
            self.callbacks.on_message(
                "compiling the student's forward (torch.compile): the first steps take longer"
            )
        with (
            compiled_forward(method.student, enabled=self.spec.training.compile),
            self.packed_batches(method, data, precision) as packing,
        ):
            return train(
                method,
                data,
                training=self.spec.training,
                device=self.device,
                precision=precision,
                checkpoint_dir=self.workdir / "checkpoints",
                metrics_log=metrics_log,
                callbacks=self.callbacks,
                ranks=self.ranks,
                parallelism=parallelism,
                packing=packing,
            )

    @contextmanager
    def packed_batches(
        self, method: Method, data: PreparedData, precision: PrecisionChoice
    ) -> Iterator[Packing | None]:
        """How train batches are packed (data.packing) for the models' attention, said in the log."""
        if not self.spec.data.packing:
            yield None
            return
        models = batch_readers(method, method.teacher)
        training = self.spec.training
        with packed_attention(
            models, capacity=self.spec.data.max_length, device=self.device, precision=precision.precision
        ) as packing:
            lengths = list(data.train["length"])
            order = epoch_batch_order(
                lengths,
                training.batch_size,
                seed=training.seed,
                epoch=0,
                group_by_length=training.group_by_length,
            )
            self.packing_summary = packing_summary(packing, models, lengths, order)
            self.callbacks.on_message(describe_packing(self.packing_summary))
            yield packing

    def load_models(self, method_class: type[Method]) -> LoadedModels:
        """The student's tokenizer and, for a method that trains with one, the frozen teacher."""
        spec = self.spec
        teacher_dir = self.resolve_model(spec.teacher) if spec.teacher is not None else None
        base_dir = self.resolve_model(spec.student.model) if spec.student.model is not None else teacher_dir
        if base_dir is None:
            raise UserError(
                "the student needs 'student.model' or a teacher to start from", param="student.model"
            )
        teacher, tokenizer, teacher_tokenizer = None, load_tokenizer(base_dir), None
        if method_class.needs_teacher and teacher_dir is not None:  # else assert_validated refuses the method
            eager = method_class.needs_eager_attention
            teacher = load_teacher(teacher_dir, spec.task, eager=eager, device=self.device)
            teacher_tokenizer = tokenizer if teacher_dir == base_dir else load_tokenizer(teacher_dir)
            self.callbacks.on_message(f"loaded teacher ({_millions(teacher)})")
        labels = _teacher_labels(teacher, teacher_dir) if spec.task != "causal_lm" else None
        return LoadedModels(tokenizer, teacher, teacher_dir, base_dir, labels, teacher_tokenizer)

    def prepare_data(self, models: LoadedModels) -> PreparedData:
        """The tokenized splits, labels in the teacher's order; a teacher that cannot read them is refused."""
        spec, teacher = self.spec, models.teacher
        data = prepare_data(
            spec.data,
            spec.task,
            models.tokenizer,
            seed=spec.training.seed,
            resolve_file=self.resolve_file,
            cache_dir=self.scratch_dir,
            teacher_id2label=models.teacher_labels,
        )
        test_note = f" and {len(data.test)} test" if data.test is not None else ""
        self.callbacks.on_message(
            f"loaded data: {len(data.train)} train, {len(data.eval)} eval{test_note} examples"
        )
        for line in data.lm_messages(spec.data.max_length):
            self.callbacks.on_message(line, "warning" if "truncated" in line else "info")
        if teacher is not None and models.teacher_tokenizer is not None:
            check_compatibility(
                task=spec.task,
                teacher=teacher,
                teacher_tokenizer=models.teacher_tokenizer,
                student_tokenizer=models.tokenizer,
                label2id=data.label2id,
                cross_tokenizer=getattr(spec.method, "cross_tokenizer", None) is not None,
            )
        return data

    def build_method(self, method_class: type[Method], models: LoadedModels, data: PreparedData) -> Method:
        """The student, built as the spec says, inside the method that trains it."""
        spec, device, eager = self.spec, self.device, method_class.needs_eager_attention
        student = build_student(
            spec.student,
            spec.task,
            base_dir=models.base_dir,
            label2id=data.label2id,
            seed=spec.training.seed,
            eager=eager,
        )
        student = add_lora(student, spec.student.lora, spec.task).to(device)
        self.callbacks.on_message(f"built student ({_millions(student)}, init {spec.student.init})")
        if spec.training.freeze_embeddings:
            frozen = freeze_input_embeddings(student)
            self.callbacks.on_message(f"froze the student's token embeddings ({frozen / 1e6:.1f}M weights)")
        if spec.student.lora is not None:
            counts = parameter_counts(student)
            trainable, total = counts["trainable"], counts["total"]
            self.callbacks.on_message(
                f"LoRA r={spec.student.lora.r}: {trainable:,} of {total:,} parameters train "
                f"({trainable / total:.2%})"
            )
        context = MethodContext(
            task=spec.task,
            student=student,
            teacher=models.teacher,
            new_student=student_factory(
                spec.student,
                spec.task,
                base_dir=models.base_dir,
                label2id=data.label2id,
                eager=eager,
                device=device,
            ),
            num_labels=len(data.label2id) if data.label2id is not None else None,
            tokenizer=models.tokenizer,
            teacher_tokenizer=models.teacher_tokenizer,
        )
        return method_class(spec.method, context).to(device)

    def teacher_outputs(
        self, method: Method, models: LoadedModels, data: PreparedData, precision: PrecisionChoice
    ) -> tuple[StoredOutputs | None, CacheOutcome | None]:
        """The teacher's outputs computed once (or found stored) and handed to the method."""
        if (
            not isinstance(method, TeacherMethod)
            or models.teacher_dir is None
            or not self.spec.training.epochs
        ):
            return None, None  # an evaluation-only job runs the teacher once, on eval and test, at the end
        share = method.stored_share()
        if share <= 0:
            outcome = CacheOutcome("live", "every train batch is new, sampled by the student")
            self.callbacks.on_message(outcome.message())
            return None, outcome
        teacher_pass = method.teacher_pass_for(
            models.teacher_dir,
            precision=precision.precision,
            autocast=precision.autocast,
            device=self.device,
            pad_token_id=data.pad_token_id,
        )
        stored, outcome = prepare_teacher_outputs(
            teacher_pass,
            _splits(data),
            mode=self.spec.training.teacher_cache,
            config=self.teacher_cache,
            scratch_dir=self.shared_scratch_dir,
            planned_visits=int(share * planned_examples(self.spec.training, len(data.train))),
            callbacks=self.callbacks,
            ranks=self.ranks,
        )
        self.callbacks.on_message(outcome.message())
        method.attach_stored_outputs(stored.lookup("train") if stored is not None else None)
        return stored, outcome

    def save_student(
        self, method: Method, models: LoadedModels, parallelism: Parallelism
    ) -> tuple[Path, PreTrainedModel] | None:
        """The trained student and its tokenizer in `save_pretrained` form, and the model as saved.

        Rank 0 saves it; under FSDP every rank first gathers the full weights to rank 0 (a collective).
        None on the other ranks.
        """
        student_dir = self.workdir / "student"
        exported: PreTrainedModel | None = method.export_model()
        if parallelism == "fsdp":
            exported = self.unsharded(method.export_model(), full_state_on_main(method.export_model()))
        if exported is None or not self.ranks.is_main:
            return None
        exported = save_student(exported, self.spec.student.lora, student_dir)
        models.tokenizer.save_pretrained(student_dir)
        self.callbacks.on_message(f"saved the student ({_millions(exported)})")
        return student_dir, exported

    def unsharded(self, sharded: PreTrainedModel, state: dict[str, torch.Tensor]) -> PreTrainedModel | None:
        """On rank 0, a plain copy of an FSDP-sharded model holding its gathered weights; None elsewhere."""
        if not self.ranks.is_main:
            return None
        config = sharded.config
        model: PreTrainedModel = auto_model_class(self.spec.task).from_config(
            config, attn_implementation=config._attn_implementation
        )
        model.load_state_dict(state)
        return model.to(self.device)

    def training_summary(
        self,
        state: TrainState,
        data: PreparedData,
        precision: PrecisionChoice,
        cache: CacheOutcome | None,
        method: Method,
        parallelism: Parallelism,
    ) -> dict[str, Any]:
        """How training ran, for the report."""
        return {
            **parallel_summary(
                devices=self.ranks.world_size,
                parallelism=parallelism,
                batch_size=self.spec.training.batch_size,
                accumulation=self.spec.training.gradient_accumulation_steps,
            ),
            "steps": state.step,
            "best_step": state.best_step,
            "precision": precision.precision,
            "precision_reason": precision.reason,
            "device": str(self.device),
            "seed": self.spec.training.seed,
            "train_examples": len(data.train),
            "eval_examples": len(data.eval),
            "test_examples": len(data.test) if data.test is not None else None,
            "teacher_cache": asdict(cache) if cache is not None else None,
            "trainable_parameters": parameter_counts(method)["trainable"],
            **method.training_notes(),
            "data": data.lm_summary(),
            "packing": self.packing_summary,
        }

    def report(
        self,
        evaluation: FinalEvaluation,
        student: PreTrainedModel,
        models: LoadedModels,
        stored: StoredOutputs | None,
        student_dir: Path,
        training: dict[str, Any],
    ) -> dict[str, Any]:
        """The report, with a teacher named by a method that trains without one loaded for it."""
        teacher = models.teacher
        if teacher is None and models.teacher_dir is not None:
            teacher = teacher_for_comparison(
                models.teacher_dir,
                self.spec.task,
                models.tokenizer,
                evaluation.data,
                self.device,
                self.callbacks,
            )
        report = evaluation.report(
            student=student,
            student_dir=student_dir,
            teacher=teacher,
            teacher_dir=models.teacher_dir,
            stored=stored,
            training=training,
        )
        control, control_dir = self.load_control(evaluation)
        compared = LanguageModels(
            student, models.tokenizer, teacher, models.teacher_tokenizer, control, evaluation.aligner
        )
        return evaluation.add_comparisons(report, compared, control_dir)

    def load_control(self, evaluation: FinalEvaluation) -> tuple[PreTrainedModel | None, Path | None]:
        """The control the spec names for the report, and its directory; no model if it cannot be compared."""
        ref = self.spec.report.control
        if ref is None:
            return None, None
        control_dir = self.resolve_model(ref)
        control = teacher_for_comparison(
            control_dir,
            self.spec.task,
            evaluation.tokenizer,
            evaluation.data,
            self.device,
            self.callbacks,
            role="control",
        )
        return control, control_dir

    def publish(self, report: dict[str, Any], metrics_log: MetricsLog, student_dir: Path) -> RunResult:
        """Write the report and the curves, announce the result."""
        report_path = self.workdir / "report.json"
        report_path.write_text(json.dumps(report, indent=2))
        title = f"{self.spec.method.type} ({self.spec.task})"
        curves_path = plot_curves(metrics_log.read(), self.workdir / "curves.png", title=title)
        announce_result(report, self.callbacks)
        return RunResult("succeeded", student_dir, report, [report_path, curves_path, metrics_log.path])


def _teacher_labels(teacher: PreTrainedModel | None, teacher_dir: Path | None) -> dict[int, str] | None:
    """The teacher's label names, from its config when the method trains without loading it."""
    # Labels follow the teacher's order even then, so a control run encodes them as its distilled twin
    # does and a head copied from the teacher's layers lines up with them.
    if teacher is not None:
        return dict(teacher.config.id2label)
    if teacher_dir is None:
        return None
    try:
        return dict(load_config(teacher_dir, param="teacher").id2label)
    except UserError:
        return None  # the report says the teacher is not compared; training needs no teacher


def _splits(data: PreparedData) -> dict[str, datasets.Dataset]:
    """The train, eval and (when there is one) test sets by name."""
    splits = {"train": data.train, "eval": data.eval}
    if data.test is not None:
        splits["test"] = data.test
    return splits
