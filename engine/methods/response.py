"""Response-based KD: soft targets on classifier logits or, for a causal LM, on every target token."""

import logging
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillery.jobspec import JobSpec, ResponseMethod
from distillery.jobspec.methods import SequenceLevelKD, SoftTargets
from engine.batching import IGNORE_INDEX
from engine.callbacks import Callbacks
from engine.data import PreparedData, add_generated_examples, causal_lm_prompts
from engine.losses import hard_target_loss, soft_target_loss, topk_soft_target_loss
from engine.losses.fused_head import fused_head_loss
from engine.methods.base import MethodContext, Task, model_inputs, next_token_labels, sequence_chunk
from engine.methods.registry import implements
from engine.methods.student_head import (
    fused_head_usable,
    last_hidden_state,
    output_layer,
    plain_output_layer,
)
from engine.methods.teacher import (
    TeacherMethod,
    response_fields,
    response_settings,
    response_targets,
    vocabulary_width,
)
from engine.teacher_cache.fields import TeacherFields

logger = logging.getLogger(__name__)


def response_loss(
    task: Task, soft: SoftTargets, student_logits: Tensor, targets: dict[str, Tensor], labels: Tensor
) -> tuple[Tensor, dict[str, float]]:
    """alpha * soft_target_loss + (1 - alpha) * cross-entropy, and both terms for logging.

    `targets` holds the teacher's "logits", or for a causal LM with top_k its top-k log-probabilities.
    Causal LM: token-level over the positions whose next token's label is not -100 (padding and
    prompt), with the spec's divergence, in chunks over the sequence; the logits are cut to the shared
    vocabulary if one model pads it.
    """
    mask, chunk_size = None, None
    if task == "causal_lm":
        labels = next_token_labels(labels)
        mask = labels != IGNORE_INDEX
        chunk_size = sequence_chunk(student_logits)
    if "logits" in targets:
        kd = soft_target_loss(
            *shared_vocabulary(student_logits, targets["logits"]),
            temperature=soft.temperature,
            divergence=soft.divergence,
            jsd_beta=soft.jsd_beta,
            mask=mask,
            chunk_size=chunk_size,
        )
    else:
        kd = topk_soft_target_loss(
            student_logits,
            targets["topk_logprobs"],
            targets["topk_indices"],
            targets["tail_logprob"],
            temperature=soft.temperature,
            divergence=soft.divergence,
            jsd_beta=soft.jsd_beta,
            mask=mask,
            chunk_size=chunk_size,
        )
    ce = hard_target_loss(student_logits, labels, chunk_size=chunk_size)
    loss = soft.alpha * kd + (1 - soft.alpha) * ce
    return loss, {"loss": loss.item(), "kd": kd.item(), "ce": ce.item()}


def response_head_loss(
    soft: SoftTargets,
    student: PreTrainedModel,
    inputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    labels: Tensor,
) -> tuple[Tensor, dict[str, float]]:
    """response_loss of a causal LM, computed with the student's output layer a chunk at a time.

    The same value and gradient, without the student's [B, T, V] logits (engine/losses/fused_head.py).
    """
    result = fused_head_loss(
        last_hidden_state(student, inputs),
        *output_layer(student),
        next_token_labels(labels),
        teacher=targets,
        temperature=soft.temperature,
        divergence=soft.divergence,
        jsd_beta=soft.jsd_beta,
        kd_weight=soft.alpha,
        ce_weight=1 - soft.alpha,
        ignore_index=IGNORE_INDEX,
    )
    return result.loss, {"loss": result.loss.item(), "kd": result.kd.item(), "ce": result.ce.item()}


def shared_vocabulary(student_logits: Tensor, teacher_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Both logits over the vocabulary they share, sliced only where one model pads its output layer."""
    width = min(student_logits.shape[-1], teacher_logits.shape[-1])
    if student_logits.shape[-1] != width:
        student_logits = student_logits[..., :width]
    if teacher_logits.shape[-1] != width:
        teacher_logits = teacher_logits[..., :width]
    return student_logits, teacher_logits


@implements(ResponseMethod)
class ResponseDistillation(TeacherMethod):
    """Soft targets (Hinton et al. 2015): the student matches the teacher's tempered distribution."""

    def __init__(self, spec: ResponseMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.soft: ResponseMethod = spec
        self.width = vocabulary_width(self.frozen_teacher, self.student) if ctx.task == "causal_lm" else None
        lm = ctx.task == "causal_lm" and ctx.fused_head_loss
        self.fused_head = lm and plain_output_layer(self.student)

    @classmethod
    def extend_train_data(
        cls,
        spec: JobSpec,
        data: PreparedData,
        teacher: PreTrainedModel | None,
        tokenizer: PreTrainedTokenizerBase,
        callbacks: Callbacks,
    ) -> PreparedData:
        """Sequence-level KD (Kim & Rush 2016): the teacher's continuations of the prompts join training."""
        settings = getattr(spec.method, "sequence_level", None)
        if settings is None or spec.task != "causal_lm" or teacher is None:
            return data
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
        added = len(data.train) - before
        callbacks.on_message(f"sequence-level KD: added {added} teacher-generated examples")
        return data

    def teacher_fields(self) -> TeacherFields:
        """The logits, or a causal LM's top-k log-probabilities."""
        return response_fields(self.task, self.soft, self.frozen_teacher, self.student)

    def teacher_settings(self) -> dict[str, Any]:
        """The temperature, when top-k log-probabilities are stored."""
        return response_settings(self.task, self.soft, self.width)

    def teacher_pass(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The response fields of one batch."""
        return response_targets(self.task, self.soft, self.frozen_teacher(**inputs).logits, self.width)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Soft-target and hard-label terms of the batch."""
        targets = self.teacher_targets(batch)
        if fused_head_usable(self.student, self.fused_head):
            return response_head_loss(self.soft, self.student, model_inputs(batch), targets, batch["labels"])
        student_logits = self.student(**model_inputs(batch)).logits
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
