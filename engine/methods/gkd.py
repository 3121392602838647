"""Generalised KD (Agarwal et al. 2024, GKD): the student also learns on its own sampled continuations.

A share `lmbda` of the train batches is on-policy: the student samples continuations of the batch's
prompts and the teacher scores every sampled token. The other batches are off-policy and train on the
data's own targets, whose teacher outputs the teacher cache can serve. Both kinds take the same loss,
the generalised JSD of Agarwal et al. with `beta` (0: forward KL, 1: reverse KL).
"""

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel

from distillery.jobspec import GKDMethod
from distillery.jobspec.methods import Divergence
from engine.batching import IGNORE_INDEX, PACKED_SEGMENTS, collate
from engine.generation import Sampling, batch_prompts, position_limit, sample_continuations
from engine.lm.packing import unpack_batch
from engine.losses import soft_target_loss, topk_soft_target_loss
from engine.losses.fused_head import fused_head_loss
from engine.methods.base import MethodContext, model_inputs, next_token_labels, sequence_chunk
from engine.methods.registry import implements
from engine.methods.response import shared_vocabulary
from engine.methods.student_head import (
    fused_head_usable,
    last_hidden_state,
    output_layer,
    plain_output_layer,
)
from engine.methods.teacher import (
    TeacherMethod,
    stored_k,
    token_fields,
    token_settings,
    token_targets,
    vocabulary_width,
)
from engine.teacher_cache.fields import TeacherFields


def gkd_divergence(beta: float) -> tuple[Divergence, float]:
    """The divergence GKD's beta selects, as the soft-target loss names it: its kind and JSD weight.

    As in TRL's GKDTrainer: beta 0 is KL(teacher || student), beta 1 is KL(student || teacher), and
    between them beta KL(p_t || m) + (1 - beta) KL(p_s || m) with m = beta p_t + (1 - beta) p_s.
    """
    if beta == 0:
        return "forward_kl", 0.5
    if beta == 1:
        return "reverse_kl", 0.5
    return "jsd", beta


def gkd_loss(
    student_logits: Tensor, targets: dict[str, Tensor], labels: Tensor, *, beta: float, temperature: float
) -> Tensor:
    """T^2 * D_beta(p_teacher^T, p_student^T), averaged over the target tokens (labels != -100).

    Logits [B, T, V] of a causal LM: the logits at t predict the label at t + 1, compared in chunks over
    the sequence. `targets` holds the teacher's "logits", cut to the vocabulary both models share, or
    its top-k log-probabilities at T and the tail's log-mass (`topk_soft_target_loss`).
    """
    labels = next_token_labels(labels)
    divergence, jsd_beta = gkd_divergence(beta)
    mask, chunk_size = labels != IGNORE_INDEX, sequence_chunk(student_logits)
    if "logits" in targets:
        return soft_target_loss(
            *shared_vocabulary(student_logits, targets["logits"]),
            temperature=temperature,
            divergence=divergence,
            jsd_beta=jsd_beta,
            mask=mask,
            chunk_size=chunk_size,
        )
    return topk_soft_target_loss(
        student_logits,
        targets["topk_logprobs"],
        targets["topk_indices"],
        targets["tail_logprob"],
        temperature=temperature,
        divergence=divergence,
        jsd_beta=jsd_beta,
        mask=mask,
        chunk_size=chunk_size,
    )


def gkd_head_loss(
    student: PreTrainedModel,
    inputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    labels: Tensor,
    *,
    beta: float,
    temperature: float,
) -> Tensor:
    """gkd_loss computed with the student's output layer a chunk at a time, without its [B, T, V] logits."""
    divergence, jsd_beta = gkd_divergence(beta)
    return fused_head_loss(
        last_hidden_state(student, inputs),
        *output_layer(student),
        next_token_labels(labels),
        teacher=targets,
        temperature=temperature,
        divergence=divergence,
        jsd_beta=jsd_beta,
        ignore_index=IGNORE_INDEX,
    ).loss


def on_policy_turn(batches_seen: int, lmbda: float) -> bool:
    """Whether batch number `batches_seen` (0-based) is on-policy.

    Batch n is on-policy when floor((n + 1) * lmbda) > floor(n * lmbda): the first N batches hold
    exactly floor(N * lmbda) on-policy ones, spread evenly, the same on every run and resume.
    """
    return math.floor((batches_seen + 1) * lmbda) > math.floor(batches_seen * lmbda)


@implements(GKDMethod)
class GKDDistillation(TeacherMethod):
    """GKD: the generalised JSD between teacher and student, on data batches and student samples."""

    def __init__(self, spec: GKDMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.spec: GKDMethod = spec
        teacher, student = self.frozen_teacher, self.student
        self.width = vocabulary_width(teacher, student)
        self.top_k = stored_k(spec.top_k, self.width)
        self.fused_head = ctx.fused_head_loss and plain_output_layer(student)
        generation = spec.generation
        self.sampling = Sampling(generation.max_new_tokens, generation.temperature, generation.top_p)
        self.max_positions = position_limit(student, teacher)
        eos = student.generation_config.eos_token_id
        self.eos_token_id: int | None = eos[0] if isinstance(eos, list) else eos
        pad = student.generation_config.pad_token_id
        self.pad_token_id = int(pad if isinstance(pad, int) else self.eos_token_id or 0)
        # Saved in checkpoints, so a resumed run continues the same schedule of on-policy batches.
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self.counts: dict[str, int] | None = None

    def teacher_fields(self) -> TeacherFields:
        """The teacher's top-k log-probabilities and tail, or with top_k 'exact' its logits."""
        return token_fields(self.top_k, self.width)

    def teacher_settings(self) -> dict[str, Any]:
        """The temperature, when top-k log-probabilities are stored."""
        return token_settings(self.top_k, self.spec.temperature)

    def teacher_pass(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The teacher's fields for one batch, over the shared vocabulary."""
        logits = self.frozen_teacher(**inputs).logits[..., : self.width]
        return token_targets(logits, self.top_k, self.spec.temperature)

    def stored_share(self) -> float:
        """Only the off-policy batches read stored teacher outputs."""
        return 1.0 - self.spec.lmbda

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """The GKD loss of the batch, or on an on-policy turn of the student's continuations of it."""
        counts = self._counts()
        seen = int(self.batches_seen)
        self.batches_seen.fill_(seen + 1)
        counts["train_batches"] += 1
        on_policy = False
        if on_policy_turn(seen, self.spec.lmbda):
            generated = self.on_policy_batch(batch)
            if generated is not None:
                batch, on_policy = generated, True
                counts["on_policy_batches"] += 1
                counts["generated_tokens"] += int((batch["labels"] != IGNORE_INDEX).sum())
        targets = self.teacher_targets(batch)
        settings = {"beta": self.spec.beta, "temperature": self.spec.temperature}
        if fused_head_usable(self.student, self.fused_head):
            inputs = model_inputs(batch)
            loss = gkd_head_loss(self.student, inputs, targets, batch["labels"], **settings)
        else:
            student_logits = self.student(**model_inputs(batch)).logits
            loss = gkd_loss(student_logits, targets, batch["labels"], **settings)
        return loss, {"loss": loss.item(), "on_policy": float(on_policy)}

    def on_policy_batch(self, batch: dict[str, Tensor]) -> dict[str, Tensor] | None:
        """The batch's prompts and the student's sampled continuations, the loss on the continuations only.

        None when the prompts leave no position for a new token within the models' position limit.
        It carries no example indices: the teacher scores these new tokens live. A packed batch's prompts
        are read from its examples one by one, and the new batch is padded.
        """
        examples = unpack_batch(batch) if PACKED_SEGMENTS in batch else batch
        prompts = batch_prompts(examples, self.spec.generation.prompt_tokens, self.eos_token_id)
        room = self.sampling.max_new_tokens
        if self.max_positions is not None:
            room = min(room, self.max_positions - max(len(prompt) for prompt in prompts))
        if room < 1:
            return None
        continuations = sample_continuations(
            self.student,
            prompts,
            replace(self.sampling, max_new_tokens=room),
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
        )
        rows: dict[str, list[Any]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for prompt, continuation in zip(prompts, continuations, strict=True):
            rows["input_ids"].append(prompt + continuation)
            rows["attention_mask"].append([1] * (len(prompt) + len(continuation)))
            rows["labels"].append([IGNORE_INDEX] * len(prompt) + continuation)
        device = batch["input_ids"].device
        collated = collate(rows, pad_token_id=self.pad_token_id)
        return {name: value.to(device) for name, value in collated.items()}

    def training_notes(self) -> dict[str, Any]:
        """How many train batches were on-policy and how many tokens the student sampled for them."""
        return dict(self._counts())

    def _counts(self) -> dict[str, int]:
        """The batch counts, started from the checkpoint's schedule position on a resumed run."""
        if self.counts is None:
            seen = int(self.batches_seen)
            self.counts = {
                "train_batches": seen,
                "on_policy_batches": math.floor(seen * self.spec.lmbda),
                "generated_tokens": 0,
            }
        return self.counts
