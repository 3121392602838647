"""The job spec: task, teacher, student, data, method and training hyperparameters."""

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from distillery.jobspec.data_format import (
    COMPLETION_COLUMN,
    MESSAGES_COLUMN,
    PROMPT_COLUMN,
    DataFormat,
    LossOn,
    ResolvedFormat,
)
from distillery.jobspec.lora import LoraSpec
from distillery.jobspec.methods import (
    MAX_DEPTH,
    PACKING_METHODS,
    TASK_METHODS,
    TEACHER_METHODS,
    MethodSpec,
    StrictModel,
    SupervisedMethod,
    Task,
)
from distillery.jobspec.resources import FSDP_METHODS, Parallelism, Priority, ResourcesSpec
from distillery.jobspec.student_config import check_student_config, known_fields_schema
from distillery.jobspec.text import ColumnName, ModelPath, ResourceId

# Errors raised by a model validator carry the offending field in their type, "param:<field>",
# because pydantic locates them at the model itself; the API appends it to the location.
LayerIndex = Annotated[int, Field(ge=0, lt=MAX_DEPTH)]
ControlMode = Literal["same_init", "base"]
# The seeds Python, NumPy and torch all accept.
MAX_SEED = 2**32 - 1
# Methods that add exits to the student's layers and may cut it: not built for a student with adapters.
NO_LORA_METHODS = frozenset({"self"})
StudentConfig = Annotated[
    dict[str, Any], AfterValidator(check_student_config), Field(json_schema_extra=known_fields_schema())
]


class ModelRef(StrictModel):
    """A model: a directory under one of the service's model roots, or the student of a succeeded job."""

    path: ModelPath | None = Field(None, description="Directory relative to a configured model root.")
    job: ResourceId | None = Field(None, description="Id of a succeeded job whose student is used.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.path is None) == (self.job is None):
            raise PydanticCustomError("param:path", "give exactly one of 'path' or 'job'")
        return self


class StudentSpec(StrictModel):
    """How the student starts: a pretrained checkpoint, a config, or chosen layers copied from a model."""

    init: Literal["pretrained", "config", "teacher_layers"] = "teacher_layers"
    model: ModelRef | None = Field(
        None,
        description="pretrained: the checkpoint (required). config/teacher_layers: the model whose "
        "architecture, tokenizer and (for teacher_layers) weights are used; default: the teacher.",
    )
    config: StudentConfig | None = Field(
        None,
        description="config: overrides of the base config, e.g. num_hidden_layers, hidden_size, "
        "num_attention_heads, intermediate_size (at most 16 KiB, 256 keys, 4 levels deep).",
    )
    layers: list[LayerIndex] | None = Field(
        None,
        max_length=MAX_DEPTH,
        description="teacher_layers: 0-based layer indices to copy (default: every other layer).",
    )
    lora: LoraSpec | None = Field(
        None,
        description="Train low-rank adapters (LoRA, via peft) instead of every weight: pretrained or "
        "teacher_layers students.",
    )
    base: ModelRef | None = Field(
        None,
        description="With control 'base': the model the teacher was trained from (its pretrained "
        "checkpoint), from which the control's student starts instead of the teacher's weights. Default "
        "for a teacher given as {job: ...}: the model that job's student started from.",
    )

    @model_validator(mode="after")
    def _fields_match_init(self) -> Self:
        if self.init == "pretrained" and self.model is None:
            raise PydanticCustomError("param:model", "init 'pretrained' needs 'model'")
        if self.init == "config" and not self.config:
            raise PydanticCustomError("param:config", "init 'config' needs a non-empty 'config'")
        if self.layers is not None and self.init != "teacher_layers":
            raise PydanticCustomError("param:layers", "'layers' is only used with init 'teacher_layers'")
        if self.layers is not None and (not self.layers or min(self.layers) < 0):
            raise PydanticCustomError("param:layers", "'layers' must be a non-empty list of indices >= 0")
        if self.lora is not None and self.init == "config":
            raise PydanticCustomError(
                "param:lora", "LoRA adapts trained weights: init 'config' starts from random ones"
            )
        return self


# The DataSpec fields that hold uploaded file ids.
DATA_FILE_FIELDS = ("train_file", "eval_file", "test_file", "transfer_file")


class DataSpec(StrictModel):
    """Where the examples come from: uploaded files and the columns to read."""

    train_file: ResourceId = Field(..., description="Id of an uploaded file (JSONL, CSV or Parquet).")
    eval_file: ResourceId | None = Field(
        None, description="Id of an uploaded eval file; default: split off train."
    )
    test_file: ResourceId | None = Field(
        None,
        description=(
            "Id of an uploaded test file, kept out of training and of checkpoint selection (which uses "
            "the eval set): the kept student and the teacher are measured on it once, at the end."
        ),
    )
    transfer_file: ResourceId | None = Field(
        None,
        description=(
            "Id of an uploaded file of unlabeled texts (a transfer set): the student learns the teacher's "
            "outputs on them beside the labeled rows. Classification with a teacher method only."
        ),
    )
    eval_fraction: float = Field(0.1, gt=0, le=0.5, description="Share of train held out when no eval file.")
    text_column: ColumnName = "text"
    text_pair_column: ColumnName | None = Field(None, description="Second text of a pair (classification).")
    label_column: ColumnName = Field("label", description="Label column (classification).")
    prompt_column: ColumnName | None = Field(
        None,
        description="Causal LM: a prompt column whose tokens are masked out of the loss (format "
        "prompt_completion: default `prompt`).",
    )
    format: DataFormat = Field(
        "auto",
        description="Causal LM: chat (OpenAI messages, rendered with the student's chat template), "
        "prompt_completion (a prompt and its completion), or text. auto: chat when the file has a "
        "`messages` column, prompt_completion when it has `prompt` and `completion`, else text.",
    )
    messages_column: ColumnName = Field(MESSAGES_COLUMN, description="Chat: the column of messages.")
    completion_column: ColumnName = Field(
        COMPLETION_COLUMN, description="prompt_completion: the column of completions."
    )
    loss_on: LossOn = Field(
        "completion",
        description="Causal LM: completion trains on the assistant turns of a chat and the completion of "
        "a pair; all trains on every token. Plain text always trains on every token.",
    )
    max_length: int = Field(
        128,
        ge=8,
        le=8192,
        description="Tokens per example. A longer causal-LM example loses its oldest context first, so "
        "the trained tokens (the assistant turns, the completion) stay whole where they fit.",
    )
    packing: bool = Field(
        False,
        description="Causal LM: lay each batch's examples end to end in rows of up to max_length tokens, "
        "each with its own position ids and an attention that never crosses from one example to the next, "
        "so training computes no padding. Every example's loss is the one it has alone, and a batch still "
        "holds batch_size examples. Methods supervised, response (not cross_tokenizer), gkd and mutual; "
        "evaluation and the teacher's stored outputs stay one example per row.",
    )
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    max_transfer_samples: int | None = Field(None, ge=1)

    def lm_columns(self, fmt: ResolvedFormat) -> dict[str, str]:
        """The columns a causal-LM file of this format must have, by the spec field that names each."""
        if fmt == "chat":
            return {"data.messages_column": self.messages_column}
        if fmt == "prompt_completion":
            return {
                "data.prompt_column": self.prompt_column or PROMPT_COLUMN,
                "data.completion_column": self.completion_column,
            }
        columns = {"data.text_column": self.text_column}
        if self.prompt_column:
            columns["data.prompt_column"] = self.prompt_column
        return columns


class TrainingSpec(StrictModel):
    """Optimisation hyperparameters shared by every method."""

    epochs: int = Field(
        3,
        ge=0,
        le=1000,
        description="0: evaluation only. Nothing is trained and the teacher makes no pre-pass: the starting "
        "student (e.g. init pretrained from a job's student) and the teacher are measured on the eval and "
        "test sets, and the report and the saved student (the starting one) are made as usual.",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps.")
    batch_size: int = Field(
        32,
        ge=1,
        le=4096,
        description="Examples per optimiser step (before gradient accumulation), over all devices: a job "
        "on N devices gives each batch_size / N, so the same spec trains the same way on any number.",
    )
    eval_batch_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Default: for classification min(4 x batch_size, 128) but at least batch_size "
        "(inference keeps no activations for a backward pass, and larger batches evaluate faster); "
        "for causal LM batch_size.",
    )
    learning_rate: float = Field(5e-5, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    max_grad_norm: float | None = Field(1.0, gt=0)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seeds Python, NumPy and torch: 0 to 2^32 - 1.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 autocast where the worker runs bf16 natively (a GPU with bf16, a CPU with "
        "AMX or AVX-512 BF16), fp32 elsewhere. bf16 on a worker without native bf16 fails the job at start.",
    )
    compile: bool = Field(
        False,
        description="Compile the student's forward with torch.compile (symbolic shapes, so batches of any "
        "length share one graph). The first steps take longer while it compiles; measured no faster on a "
        "2-core CPU, so off by default.",
    )
    eval_every_steps: int | None = Field(None, ge=1, description="Default: once per epoch.")
    early_stopping_patience: int | None = Field(None, ge=1, description="Evaluations without improvement.")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="Default: at each evaluation.")
    group_by_length: bool = True
    freeze_embeddings: bool = Field(
        False,
        description="Keep the student's token-embedding matrix as it was copied from a trained model, so "
        "neither its gradient nor its optimiser update is computed: in a small encoder it holds most of "
        "the parameters. Classification students from trained weights (init teacher_layers or pretrained) "
        "without LoRA, which freezes it already.",
    )
    parallelism: Parallelism = Field(
        "auto",
        description="With resources.devices > 1. ddp: every device holds the whole student; fsdp: the "
        "student (and a teacher too large for one device) is sharded across devices with FSDP2 (methods "
        f"{', '.join(sorted(FSDP_METHODS))}); auto: ddp unless the models would not fit one device.",
    )
    teacher_cache: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Teacher outputs computed once before training, stored, and shared with every job on "
        "the same teacher and examples. auto: when a stored copy exists, or something reads them twice: "
        "training of two epochs or more, or another queued or running job on the same teacher, data and "
        "method (read once, a stored pass only adds its cost); on: always, even for one epoch; off: the "
        "teacher runs on every step. Outputs that would exceed the store's bound fall back to the live "
        "teacher, as the job's log and report say.",
    )


class ReportSpec(StrictModel):
    """What the report shows beside the student and its teacher: a control, and sample generations."""

    control: ModelRef | None = Field(
        None,
        description="A model trained on the same data without the teacher, such as the student of a "
        "supervised job ({job: ...}): the report measures it beside the student and the teacher. It must "
        "read the student's tokens.",
    )
    generations: int = Field(
        3,
        ge=0,
        le=16,
        description="Causal LM: held-out texts whose beginning the teacher, the student and the control "
        "each continue (greedy), side by side in the report.",
    )
    prompt_tokens: int = Field(
        8, ge=1, le=512, description="Causal LM: student tokens of each held-out text given as the prompt."
    )
    max_new_tokens: int = Field(24, ge=1, le=256, description="Causal LM: tokens each model generates.")


class JobSpec(StrictModel):
    """Everything the worker needs to run one distillation."""

    task: Task = "sequence_classification"
    teacher: ModelRef | None = Field(None, description=f"Required by {', '.join(sorted(TEACHER_METHODS))}.")
    student: StudentSpec = Field(default_factory=StudentSpec)
    data: DataSpec
    method: MethodSpec = Field(default_factory=SupervisedMethod)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    control: Literal[False, True, "same_init", "base"] = Field(
        False,
        description="Also run the control: the same student, data, seed and schedule trained without the "
        "teacher (method supervised), as a linked job; the job's result then reports its gain over the "
        "control and a verdict. same_init (or true): the control starts from the student's own starting "
        "weights, so from teacher layers it measures the soft targets alone; base: it starts from the "
        "same layers of the model the teacher was trained from (student.base), as the benchmarks' "
        "controls do, so it measures distillation and the teacher's initialisation together. Methods with "
        f"a teacher only ({', '.join(sorted(TEACHER_METHODS))}).",
    )
    report: ReportSpec = Field(default_factory=ReportSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    priority: Priority = Field(
        "normal",
        description="Which queued job a free worker takes first: high before normal before low; a job "
        "that waits long enough counts as the next level up, so low jobs still run.",
    )

    @model_validator(mode="after")
    def _method_fits(self) -> Self:
        kind = self.method.type
        if kind not in TASK_METHODS[self.task]:
            allowed = ", ".join(sorted(TASK_METHODS[self.task]))
            raise PydanticCustomError(
                "param:method.type",
                "method '{kind}' does not apply to task '{task}' (allowed: {allowed})",
                {"kind": kind, "task": self.task, "allowed": allowed},
            )
        if kind in TEACHER_METHODS and self.teacher is None:
            raise PydanticCustomError("param:teacher", "method '{kind}' needs a 'teacher'", {"kind": kind})
        if self.data.transfer_file and (
            self.task != "sequence_classification" or kind not in TEACHER_METHODS
        ):
            raise PydanticCustomError(
                "param:data.transfer_file",
                "a transfer set needs a teacher to label it: task sequence_classification with method "
                "{teachers} (got task '{task}', method '{kind}')",
                {"task": self.task, "kind": kind, "teachers": " or ".join(sorted(TEACHER_METHODS))},
            )
        self._check_causal_lm_only()
        self._check_packing()
        if self.control and kind not in TEACHER_METHODS:
            raise PydanticCustomError(
                "param:control",
                "a control is the same run without the teacher, so it needs a method with a teacher "
                "({teachers}); method '{kind}' has none",
                {"kind": kind, "teachers": ", ".join(sorted(TEACHER_METHODS))},
            )
        if self.student.lora is not None and kind in NO_LORA_METHODS:
            raise PydanticCustomError(
                "param:student.lora",
                "method '{kind}' changes the student's own layers and cannot train a LoRA student",
                {"kind": kind},
            )
        self._check_devices()
        self._check_frozen_embeddings()
        self._check_evaluation_only()
        self._check_control_base()
        needs_base = self.student.init != "pretrained" and self.student.model is None
        if needs_base and self.teacher is None:
            raise PydanticCustomError(
                "param:student.model",
                "student init '{init}' needs 'student.model' when there is no teacher",
                {"init": self.student.init},
            )
        return self

    def _check_devices(self) -> None:
        """The batch splits evenly across every process (nodes x devices), and FSDP only shards the methods
        it can."""
        devices = self.resources.devices * self.resources.nodes
        if self.training.batch_size % devices:
            raise PydanticCustomError(
                "param:training.batch_size",
                "batch_size {batch} is the global batch and must split evenly across {devices} devices",
                {"batch": self.training.batch_size, "devices": devices},
            )
        if self.training.parallelism == "fsdp" and self.method.type not in FSDP_METHODS:
            raise PydanticCustomError(
                "param:training.parallelism",
                "method '{kind}' reads the models' inner layers or trains more than one student, which an "
                "FSDP shard does not hold whole: use parallelism ddp (methods FSDP shards: {allowed})",
                {"kind": self.method.type, "allowed": ", ".join(sorted(FSDP_METHODS))},
            )

    def _check_frozen_embeddings(self) -> None:
        """Frozen embeddings must be trained ones, of a classifier, trained without adapters."""
        if not self.training.freeze_embeddings:
            return
        if self.task != "sequence_classification":
            reason = "a causal LM's output layer often shares the embedding matrix, so it would freeze too"
        elif self.student.init == "config":
            reason = "init 'config' starts from random embeddings"
        elif self.student.lora is not None:
            reason = "a LoRA student trains only its adapters, so its embeddings are frozen already"
        else:
            return
        raise PydanticCustomError(
            "param:training.freeze_embeddings",
            "freeze_embeddings keeps a classifier's trained token embeddings: {reason}",
            {"reason": reason},
        )

    @property
    def control_mode(self) -> ControlMode | None:
        """Which control the job runs, if any: `true` is same_init."""
        if self.control is False:
            return None
        return "same_init" if self.control is True else self.control

    def _check_control_base(self) -> None:
        """A base control needs a base model, and a student whose weights it can take from one."""
        if self.control_mode != "base":
            if self.student.base is not None:
                raise PydanticCustomError(
                    "param:student.base", "'student.base' is only used with control 'base'"
                )
            return
        if self.student.init == "config":
            raise PydanticCustomError(
                "param:control",
                "control 'base' starts the control from the base model's weights, but init 'config' starts "
                "both students from random ones: use control same_init",
            )
        if self.student.base is None and (self.teacher is None or self.teacher.job is None):
            raise PydanticCustomError(
                "param:control",
                "control 'base' starts the control's student from the model the teacher was trained from: "
                "name it in student.base (a teacher given as {job: ...} supplies the model its student "
                "started from), or use control same_init",
            )

    def _check_evaluation_only(self) -> None:
        """An evaluation-only job (epochs 0) measures a student that already exists: nothing to train."""
        if self.training.epochs:
            return
        refused = {
            "control": ("a control is a second training run, and this job trains nothing", self.control),
            "training.max_steps": (
                "max_steps bounds training, and this job trains nothing",
                self.training.max_steps,
            ),
            "student.init": (
                "init 'config' starts from random weights, which are not worth measuring untrained: use init "
                "pretrained with the model to measure",
                self.student.init == "config",
            ),
        }
        for param, (reason, value) in refused.items():
            if value is not None and value is not False:
                raise PydanticCustomError(
                    f"param:{param}", "training.epochs 0 is evaluation only: {reason}", {"reason": reason}
                )

    def _check_causal_lm_only(self) -> None:
        """Options that only a causal LM job reads are refused on any other task."""
        if self.task == "causal_lm":
            return
        method = self.method
        options = {
            "method.sequence_level": ("sequence-level KD", getattr(method, "sequence_level", None)),
            "data.format": (
                f"format '{self.data.format}'",
                self.data.format in ("chat", "prompt_completion"),
            ),
            "method.cross_tokenizer": ("cross_tokenizer", getattr(method, "cross_tokenizer", None)),
            "method.top_k": ("top_k", getattr(method, "top_k", None)),
            "data.packing": ("packing", self.data.packing),
        }
        for param, (what, value) in options.items():
            if value is not None and value is not False:
                raise PydanticCustomError(
                    f"param:{param}",
                    "{what} applies to task causal_lm only (got task '{task}')",
                    {"what": what, "task": self.task},
                )

    def _check_packing(self) -> None:
        """Packing is refused where a packed row would change the loss: other methods, other tokenizers."""
        if not self.data.packing or self.task != "causal_lm":
            return
        kind = self.method.type
        if kind not in PACKING_METHODS:
            raise PydanticCustomError(
                "param:data.packing",
                "method '{kind}' reads more than each token's logits and label (hidden states under a "
                "padding mask), which packed rows do not keep apart: packing applies to methods {allowed}",
                {"kind": kind, "allowed": ", ".join(sorted(PACKING_METHODS))},
            )
        if getattr(self.method, "cross_tokenizer", None) is not None:
            raise PydanticCustomError(
                "param:data.packing",
                "cross_tokenizer aligns each example with the teacher's own tokens of its text, one example "
                "per row: leave out packing or cross_tokenizer",
            )

    def control_spec(self, base: ModelRef | None = None) -> "JobSpec":
        """The control of this job: its student, data, seed and schedule, trained on the labels alone.

        The teacher stays in the spec: the supervised method never runs it in training, but a student
        built from the teacher's layers starts from the same weights (control same_init), and the report
        compares the control with the same teacher. A transfer set goes, since only a teacher can label
        it. A base control's student takes its weights from `base` (default: `student.base`) instead.
        """
        spec = self.model_dump(mode="json", include=set(JobSpec.model_fields))
        spec.update(method={"type": "supervised"}, control=False)
        spec["data"].update(transfer_file=None, max_transfer_samples=None)
        if self.control_mode == "base":
            base = base or self.student.base
            if base is None:
                raise ValueError("a base control needs the base model (student.base)")
            spec["student"]["model"] = base.model_dump(mode="json")
        spec["student"]["base"] = None  # read by the parent's control only
        return JobSpec.model_validate(spec)

    def model_refs(self) -> list[ModelRef]:
        """Every model the job reads: teacher, the student's starting model and control, where given."""
        refs = [self.teacher, self.student.model, self.report.control]
        return [ref for ref in refs if ref is not None]
