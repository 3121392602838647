"""What every distillation method is: its config, the models it trains, and the loss of one batch."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillery.jobspec.methods import MethodBase, Task
from engine.batching import EXAMPLE_INDEX, IGNORE_INDEX, PACKED_SEGMENTS
from engine.callbacks import Callbacks
from engine.data import PreparedData
from engine.lm.alignment import TokenAligner
from engine.losses import hard_target_loss
from engine.losses.chunking import chunk_length

NOT_MODEL_INPUTS = ("labels", EXAMPLE_INDEX, PACKED_SEGMENTS)


@dataclass
class MethodContext:
    """What the engine hands a method: the models on the device and how to build more students."""

    task: Task
    student: PreTrainedModel
    teacher: PreTrainedModel | None
    new_student: Callable[[int], PreTrainedModel]
    num_labels: int | None
    tokenizer: PreTrainedTokenizerBase | None = None
    teacher_tokenizer: PreTrainedTokenizerBase | None = None
    # A causal LM's token-level loss computed with its output layer, a chunk of positions at a time, where
    # the method and the model allow (engine/methods/student_head.py); False keeps the logits path.
    fused_head_loss: bool = True


class Method(nn.Module):
    """Owns the student and any extra trainable parts; computes the loss of one batch.

    The optimiser trains `parameters()` and checkpoints store `state_dict()`, so the teacher is kept
    out of the registered submodules (held in a tuple) and is never trained or saved.
    """

    needs_eager_attention: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = True
    # Set by a method whose teacher reads other tokens than the student, so the report compares them too.
    aligner: TokenAligner | None = None

    def __init__(self, spec: Any, ctx: MethodContext) -> None:
        super().__init__()
        assert_validated(spec, ctx)
        self.spec = spec
        self.task: Task = ctx.task
        self.num_labels = ctx.num_labels
        self.student = ctx.student
        self._teacher = (ctx.teacher,)

    @property
    def teacher(self) -> PreTrainedModel | None:
        """The frozen teacher, or None for methods that train without one."""
        return self._teacher[0]

    @property
    def frozen_teacher(self) -> PreTrainedModel:
        """The teacher of a method that needs one, which a validated spec always names."""
        teacher = self.teacher
        assert teacher is not None
        return teacher

    @classmethod
    def extend_train_data(
        cls,
        spec: Any,
        data: PreparedData,
        teacher: PreTrainedModel | None,
        tokenizer: PreTrainedTokenizerBase,
        callbacks: Callbacks,
    ) -> PreparedData:
        """A method's own data step before training, such as sequence-level KD's; none by default."""
        return data

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Total loss of one batch and its named terms for logging, e.g. {"loss": .., "kd": .., "ce": ..}."""
        raise NotImplementedError

    def training_notes(self) -> dict[str, Any]:
        """Facts about how the method trained, for the report (GKD's on-policy batches); none by default."""
        return {}

    def export_model(self) -> PreTrainedModel:
        """The model evaluated at the end and saved as the student."""
        return self.student

    def train(self, mode: bool = True) -> "Method":
        """Switch the trainable parts; the teacher stays in eval mode whatever the mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self


def assert_validated(spec: MethodBase, ctx: MethodContext) -> None:
    """What the job spec's validation promised the engine: the task fits the method, its teacher is there.

    The rules themselves live with the schemas (`MethodBase.tasks`, `needs_teacher`) and are checked,
    with an error naming the field, when a spec is validated; this only catches a spec that skipped it.
    """
    method = spec.type_name()
    assert ctx.task in spec.tasks, f"method {method!r} does not apply to task {ctx.task!r}"
    assert ctx.teacher is not None or not spec.needs_teacher, f"method {method!r} needs a teacher"


def model_inputs(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The batch without labels, example indices and packing map, ready to pass to a Hugging Face model."""
    return {key: value for key, value in batch.items() if key not in NOT_MODEL_INPUTS}


def next_token_view(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Causal LM: logits at positions 0..T-2 against the labels at 1..T-1 (the token each one predicts)."""
    return logits[:, :-1], labels[:, 1:]


def next_token_labels(labels: Tensor) -> Tensor:
    """Causal LM: at each position the label of the token it predicts, the next one (-100 at the last).

    The same pairing as next_token_view without slicing the logits, whose backward would allocate a
    second tensor the size of the logits.
    """
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def sequence_chunk(logits: Tensor) -> int:
    """Positions per chunk of a causal LM's token-level losses over these [B, T, V] logits."""
    return chunk_length(logits.shape[0], logits.shape[-1], device_type=logits.device.type)


def cross_entropy(task: Task, logits: Tensor, labels: Tensor) -> Tensor:
    """Hard-label loss: per sample for classification, per target token (shifted, chunked) for causal LM."""
    if task == "causal_lm":
        return hard_target_loss(logits, next_token_labels(labels), chunk_size=sequence_chunk(logits))
    return hard_target_loss(logits, labels)
