"""Relational KD (Park et al. 2019): distance- and angle-wise losses on pooled sample representations."""

import logging
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from distillery.spec.methods import RelationMethod
from worker.engine.losses import rkd_angle_loss, rkd_distance_loss
from worker.engine.methods.attention import captured_outputs
from worker.engine.methods.base import Method, MethodContext, model_inputs
from worker.engine.methods.response import response_loss

logger = logging.getLogger(__name__)


def pooler_of(model: PreTrainedModel) -> nn.Module | None:
    """The model's pooler (dense + tanh over [CLS] in BERT), or None when it has none."""
    pooler = getattr(model.base_model, "pooler", None)
    return pooler if isinstance(pooler, nn.Module) else None


def forward_with_representation(model: PreTrainedModel, inputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(logits, [B, D] sample representation): the pooler output, else the first token's final state."""
    pooler = pooler_of(model)
    modules = {"pooler": pooler} if pooler is not None else {}
    with captured_outputs(modules) as captured:
        outputs = model(**inputs, output_hidden_states=True)
    pooled: Any = captured.get("pooler")
    if isinstance(pooled, Tensor) and pooled.dim() == 2:
        return outputs.logits, pooled
    return outputs.logits, outputs.hidden_states[-1][:, 0]


class RelationDistillation(Method):
    """Response term + distance_weight * RKD-D + angle_weight * RKD-A on pooled representations."""

    def __init__(self, spec: RelationMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.spec: RelationMethod = spec
        if self.teacher is None:
            raise ValueError("relation distillation needs a teacher")
        for side, model in (("teacher", self.teacher), ("student", self.student)):
            source = "pooler output" if pooler_of(model) is not None else "first token's final hidden state"
            logger.info("relation distillation: %s represented by its %s", side, source)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Response term plus the weighted RKD distance and angle losses over the batch."""
        teacher = self.teacher
        assert teacher is not None
        inputs = model_inputs(batch)
        with torch.no_grad():
            teacher_logits, teacher_pooled = forward_with_representation(teacher, inputs)
        student_logits, student_pooled = forward_with_representation(self.student, inputs)
        response, terms = response_loss(self.task, self.spec, student_logits, teacher_logits, batch["labels"])
        distance = rkd_distance_loss(student_pooled, teacher_pooled)
        angle = rkd_angle_loss(student_pooled, teacher_pooled)
        loss = response + self.spec.distance_weight * distance + self.spec.angle_weight * angle
        terms = {
            **terms,
            "loss": loss.item(),
            "rkd_distance": distance.item(),
            "rkd_angle": angle.item(),
        }
        return loss, terms
