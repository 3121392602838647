"""Relational KD (Park et al. 2019): distance- and angle-wise losses on pooled sample representations."""

import logging
from typing import Any

from torch import Tensor, nn
from transformers import PreTrainedModel

from distillery.jobspec.methods import RelationMethod
from engine.losses import rkd_angle_loss, rkd_distance_loss
from engine.methods.attention import captured_outputs
from engine.methods.base import MethodContext, model_inputs
from engine.methods.registry import implements
from engine.methods.response import response_loss
from engine.methods.teacher import TeacherMethod, response_fields
from engine.teacher_cache.fields import TeacherField, TeacherFields

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


@implements(RelationMethod)
class RelationDistillation(TeacherMethod):
    """Response term + distance_weight * RKD-D + angle_weight * RKD-A on pooled representations."""

    def __init__(self, spec: RelationMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.spec: RelationMethod = spec
        for side, model in (("teacher", self.frozen_teacher), ("student", self.student)):
            source = "pooler output" if pooler_of(model) is not None else "first token's final hidden state"
            logger.info("relation distillation: %s represented by its %s", side, source)

    def teacher_fields(self) -> TeacherFields:
        """The logits and the pooled representation of each example."""
        teacher = self.frozen_teacher
        pooled = TeacherField((int(teacher.config.hidden_size),), dtype="float32")
        return {**response_fields(self.task, self.spec, teacher, self.student), "pooled": pooled}

    def teacher_pass(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The logits and pooled representations of one batch."""
        logits, pooled = forward_with_representation(self.frozen_teacher, inputs)
        return {"logits": logits, "pooled": pooled}

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Response term plus the weighted RKD distance and angle losses over the batch."""
        targets = self.teacher_targets(batch)
        student_logits, student_pooled = forward_with_representation(self.student, model_inputs(batch))
        response, terms = response_loss(self.task, self.spec, student_logits, targets, batch["labels"])
        distance = rkd_distance_loss(student_pooled, targets["pooled"])
        angle = rkd_angle_loss(student_pooled, targets["pooled"])
        loss = response + self.spec.distance_weight * distance + self.spec.angle_weight * angle
        terms = {
            **terms,
            "loss": loss.item(),
            "rkd_distance": distance.item(),
            "rkd_angle": angle.item(),
        }
        return loss, terms
