"""Feature distillation (FitNets, Romero et al. 2015): hidden-state hints added to the response term."""

import logging
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from distillery.jobspec.methods import FeatureMethod
from engine.errors import UserError
from engine.losses import hidden_state_loss
from engine.methods.base import MethodContext, model_inputs
from engine.methods.registry import implements
from engine.methods.response import response_loss
from engine.methods.teacher import (
    TeacherMethod,
    response_fields,
    response_settings,
    response_targets,
    vocabulary_width,
)
from engine.teacher_cache.fields import TeacherField, TeacherFields

logger = logging.getLogger(__name__)


def num_layers(model: PreTrainedModel) -> int:
    """Transformer layers of a model, from its config."""
    return int(model.config.num_hidden_layers)


def hidden_width(model: PreTrainedModel) -> int:
    """Width of a model's hidden states, from its config."""
    return int(model.config.hidden_size)


def default_layer_map(teacher_layers: int, student_layers: int) -> list[tuple[int, int]]:
    """Embeddings 0 <- 0, then student layer j (1..Ls) <- teacher layer round(j * Lt / Ls), halves up."""
    pairs = [(0, 0)]
    for j in range(1, student_layers + 1):
        pairs.append(((2 * j * teacher_layers + student_layers) // (2 * student_layers), j))
    return pairs


def check_layer_map(
    pairs: list[tuple[int, int]], *, teacher_limit: int, student_limit: int, param: str, what: str
) -> None:
    """Raise a UserError unless every pair is [teacher, student] with 0 <= index <= limit."""
    if not pairs:
        raise UserError(f"{param} must name at least one [teacher, student] pair", param=param)
    for teacher_index, student_index in pairs:
        if not (0 <= teacher_index <= teacher_limit and 0 <= student_index <= student_limit):
            raise UserError(
                f"{param} pair [{teacher_index}, {student_index}] is out of range: {what} go from 0 to "
                f"{teacher_limit} for the teacher and from 0 to {student_limit} for the student",
                param=param,
            )


@implements(FeatureMethod)
class FeatureDistillation(TeacherMethod):
    """Response term + feature_weight * hidden-state loss over mapped teacher -> student layers."""

    def __init__(self, spec: FeatureMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.spec: FeatureMethod = spec
        teacher = self.frozen_teacher
        self.width = vocabulary_width(teacher, self.student) if ctx.task == "causal_lm" else None
        teacher_layers, student_layers = num_layers(teacher), num_layers(self.student)
        if spec.layer_map is None:
            self.layer_map = default_layer_map(teacher_layers, student_layers)
        else:
            self.layer_map = [(int(t), int(s)) for t, s in spec.layer_map]
        check_layer_map(
            self.layer_map,
            teacher_limit=teacher_layers,
            student_limit=student_layers,
            param="method.layer_map",
            what="hidden-state indices (0 = embeddings, i = output of layer i)",
        )
        student_width, teacher_width = hidden_width(self.student), hidden_width(teacher)
        # One regressor per pair (FitNets): each layer's hint lives in its own subspace of the student.
        self.projectors: nn.ModuleList | None = None
        if student_width != teacher_width:
            weight = next(self.student.parameters())
            self.projectors = nn.ModuleList(
                nn.Linear(student_width, teacher_width, device=weight.device, dtype=weight.dtype)
                for _ in self.layer_map
            )
        logger.info(
            "feature distillation over layers %s (teacher, student), projectors: %s",
            self.layer_map,
            "none" if self.projectors is None else f"{student_width} -> {teacher_width}",
        )

    def teacher_fields(self) -> TeacherFields:
        """The response fields and the hidden states of the mapped teacher layers."""
        width = hidden_width(self.frozen_teacher)
        states = {f"hidden_{t}": TeacherField(("L", width)) for t in sorted({t for t, _ in self.layer_map})}
        return {**response_fields(self.task, self.spec, self.frozen_teacher, self.student), **states}

    def teacher_settings(self) -> dict[str, Any]:
        """The temperature, when top-k log-probabilities are stored."""
        return response_settings(self.task, self.spec, self.width)

    def teacher_pass(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The response fields and mapped hidden states of one batch."""
        out = self.frozen_teacher(**inputs, output_hidden_states=True)
        states = {f"hidden_{t}": out.hidden_states[t] for t, _ in self.layer_map}
        return {**response_targets(self.task, self.spec, out.logits, self.width), **states}

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Response term plus the mean hidden-state loss over the mapped layers."""
        targets = self.teacher_targets(batch)
        student_out = self.student(**model_inputs(batch), output_hidden_states=True)
        response, terms = response_loss(self.task, self.spec, student_out.logits, targets, batch["labels"])
        feature = self.feature_loss(student_out.hidden_states, targets, batch["attention_mask"])
        loss = response + self.spec.feature_weight * feature
        return loss, {**terms, "loss": loss.item(), "feature": feature.item()}

    def feature_loss(
        self, student_states: tuple[Tensor, ...], targets: dict[str, Tensor], attention_mask: Tensor
    ) -> Tensor:
        """Mean over mapped pairs of the hidden-state loss, padding positions left out."""
        mask = attention_mask.bool()
        losses = []
        for index, (teacher_index, student_index) in enumerate(self.layer_map):
            student_state = student_states[student_index]
            if self.projectors is not None:
                student_state = self.projectors[index](student_state)
            losses.append(
                hidden_state_loss(
                    student_state,
                    targets[f"hidden_{teacher_index}"],
                    kind=self.spec.loss,
                    normalize=self.spec.normalize,
                    mask=mask,
                )
            )
        return torch.stack(losses).mean()
