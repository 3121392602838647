"""Response KD between a teacher and a student whose tokenizers differ: Universal Logit Distillation."""

import torch
from torch import Tensor
from transformers import PreTrainedModel

from distillery.jobspec import ResponseMethod
from engine.batching import EXAMPLE_INDEX
from engine.lm.alignment import TeacherBatch, TokenAligner
from engine.losses.uld import SharedTokens, shared_tokens, uld_loss
from engine.methods.base import Method, MethodContext, cross_entropy, model_inputs
from engine.methods.registry import implements


def teacher_positions(teacher: PreTrainedModel) -> int | None:
    """The longest input the teacher's position embeddings allow, when its config says."""
    config = teacher.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@implements(ResponseMethod, cross_tokenizer="uld")
class UniversalLogitDistillation(Method):
    """ULD (Boizard et al. 2024): the student's sorted probabilities match the teacher's, by character.

    Each batch is decoded to text and encoded by the teacher's tokenizer (once per example); where both
    tokenizations reach the same character, the two next-token distributions are compared with
    `uld_loss`. loss = alpha * ULD + (1 - alpha) * cross-entropy on the student's labels. The teacher
    runs live: its outputs are in its own tokens, which the teacher cache does not store.
    """

    aligner: TokenAligner

    def __init__(self, spec: ResponseMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        teacher = self.frozen_teacher
        assert ctx.tokenizer is not None and ctx.teacher_tokenizer is not None, "the engine hands both"
        self.soft = spec
        self.aligner = TokenAligner(
            ctx.tokenizer, ctx.teacher_tokenizer, teacher_max_length=teacher_positions(teacher)
        )
        self.shared: SharedTokens | None = None
        if spec.hybrid:
            self.shared = shared_tokens(
                ctx.teacher_tokenizer.get_vocab(),
                ctx.tokenizer.get_vocab(),
                teacher_width=int(teacher.config.vocab_size),
                student_width=int(ctx.student.config.vocab_size),
            )

    def teacher_batch(self, batch: dict[str, Tensor]) -> TeacherBatch:
        """The batch in the teacher's tokens, with the positions where both models follow the same text."""
        return self.aligner.batch(
            batch["input_ids"], batch["attention_mask"], batch["labels"], batch.get(EXAMPLE_INDEX)
        )

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """ULD on the aligned positions and cross-entropy on the labels."""
        view = self.teacher_batch(batch)
        student_logits = self.student(**model_inputs(batch)).logits
        with torch.no_grad():
            teacher = self.frozen_teacher(input_ids=view.input_ids, attention_mask=view.attention_mask)
        if self.shared is not None and self.shared.teacher_ids.device != student_logits.device:
            self.shared = self.shared.to(student_logits.device)
        kd = uld_loss(
            student_logits[view.student_rows, view.student_columns],
            teacher.logits[view.teacher_rows, view.teacher_columns],
            temperature=self.soft.temperature,
            sorted_weight=self.soft.uld_weight,
            shared=self.shared,
        )
        ce = cross_entropy("causal_lm", student_logits, batch["labels"])
        loss = self.soft.alpha * kd + (1 - self.soft.alpha) * ce
        terms = {"loss": loss.item(), "kd": kd.item(), "ce": ce.item(), "aligned": view.aligned_fraction}
        return loss, terms
