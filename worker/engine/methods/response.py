"""Response-based KD: soft targets on classifier logits or, for a causal LM, on every target token."""

import logging

import torch
from torch import Tensor
from transformers import PreTrainedModel

from distillery.spec import ResponseMethod
from distillery.spec.methods import SequenceLevelKD, SoftTargets
from worker.engine.batching import EXAMPLE_INDEX, IGNORE_INDEX
from worker.engine.errors import UserError
from worker.engine.losses import hard_target_loss, soft_target_loss
from worker.engine.methods.base import Method, MethodContext, Task, model_inputs, next_token_view

logger = logging.getLogger(__name__)


def teacher_logits(teacher: PreTrainedModel, inputs: dict[str, Tensor]) -> Tensor:
    """The frozen teacher's logits for the batch, outside the autograd graph."""
    with torch.no_grad():
        return teacher(**inputs).logits


class TeacherLogitCache:
    """The frozen teacher's classifier logits per training example, kept after its first forward pass.

    The teacher runs in eval mode, so an example's logits are the same every epoch: later epochs look
    them up instead of running the teacher again. Only for classification, whose logits are small.
    """

    def __init__(self) -> None:
        self._logits: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self._logits)

    def logits(self, teacher: PreTrainedModel, inputs: dict[str, Tensor], indices: Tensor | None) -> Tensor:
        """The batch's teacher logits: looked up if every example was seen before, else computed and kept."""
        if indices is None:
            return teacher_logits(teacher, inputs)
        keys = indices.tolist()
        if all(key in self._logits for key in keys):
            return torch.stack([self._logits[key] for key in keys])
        logits = teacher_logits(teacher, inputs)
        self._logits.update(zip(keys, logits.unbind(0), strict=True))
        return logits


def response_loss(
    task: Task, soft: SoftTargets, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor
) -> tuple[Tensor, dict[str, float]]:
    """alpha * soft_target_loss + (1 - alpha) * cross-entropy, and both terms for logging.

    Causal LM: token-level over the shifted positions whose label is not -100 (padding and prompt),
    with the spec's divergence; the logits are cut to the shared vocabulary if one model pads it.
    """
    mask = None
    if task == "causal_lm":
        student_logits, labels = next_token_view(student_logits, labels)
        teacher_logits = teacher_logits[:, :-1]
        mask = labels != IGNORE_INDEX
        width = min(student_logits.shape[-1], teacher_logits.shape[-1])
        student_logits, teacher_logits = student_logits[..., :width], teacher_logits[..., :width]
    kd = soft_target_loss(
        student_logits,
        teacher_logits,
        temperature=soft.temperature,
        divergence=soft.divergence,
        jsd_beta=soft.jsd_beta,
        mask=mask,
    )
    ce = hard_target_loss(student_logits, labels)
    loss = soft.alpha * kd + (1 - soft.alpha) * ce
    return loss, {"loss": loss.item(), "kd": kd.item(), "ce": ce.item()}


class ResponseDistillation(Method):
    """Soft targets (Hinton et al. 2015): the student matches the teacher's tempered distribution."""

    def __init__(self, spec: ResponseMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        if ctx.teacher is None:
            raise UserError("response distillation needs a teacher", param="teacher")
        if spec.sequence_level is not None and ctx.task != "causal_lm":
            raise UserError("sequence-level KD applies to causal LMs only", param="method.sequence_level")
        self.soft: ResponseMethod = spec
        self.teacher_cache = TeacherLogitCache() if ctx.task == "sequence_classification" else None

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Soft-target and hard-label terms of the batch."""
        assert self.teacher is not None
        inputs = model_inputs(batch)
        student_logits = self.student(**inputs).logits
        if self.teacher_cache is None:
            targets = teacher_logits(self.teacher, inputs)
        else:
            targets = self.teacher_cache.logits(self.teacher, inputs, batch.get(EXAMPLE_INDEX))
        return response_loss(self.task, self.soft, student_logits, targets, batch["labels"])


def generate_continuations(
    teacher: PreTrainedModel,
    prompts: list[list[int]],
    settings: SequenceLevelKD,
    *,
    pad_token_id: int,
    eos_token_id: int | None,
    batch_size: int,
    seed: int,
) -> list[list[int]]:
    """The teacher's continuation of each prompt (Kim & Rush 2016), cut after its first EOS."""
    torch.manual_seed(seed)
    device = next(teacher.parameters()).device
    sampling = (
        {"do_sample": True, "temperature": settings.sampling_temperature}
        if settings.do_sample
        else {"do_sample": False}
    )
    continuations: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(len(prompt) for prompt in chunk)
        # Left padding, so every prompt ends where generation starts.
        input_ids = torch.tensor([[pad_token_id] * (width - len(p)) + p for p in chunk], device=device)
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
        with torch.inference_mode():
            generated = teacher.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=pad_token_id,
                eos_token_id=eos_token_id,
                **sampling,
            )
        for row in generated[:, width:].tolist():
            if eos_token_id is not None and eos_token_id in row:
                row = row[: row.index(eos_token_id) + 1]
            continuations.append(row)
    logger.info("teacher generated %d continuations", len(continuations))
    return continuations
