"""Attention distillation: TinyBERT attention maps or MiniLMv2 Q/K/V relations, plus the response term."""

import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from distillery.jobspec.methods import AttentionMethod
from engine.errors import UserError
from engine.losses import attention_map_loss, self_attention_relation_loss
from engine.methods.base import MethodContext, model_inputs
from engine.methods.feature import check_layer_map, default_layer_map, num_layers
from engine.methods.registry import implements
from engine.methods.response import response_loss
from engine.methods.teacher import TeacherMethod, response_fields
from engine.teacher_cache.fields import TeacherField, TeacherFields

logger = logging.getLogger(__name__)

# Attribute names of the query, key and value projections in the attention modules of common encoders
# (BERT/RoBERTa/ELECTRA/MiniLM, DistilBERT, and the q_proj family).
PROJECTION_NAMES = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"), ("q_proj", "k_proj", "v_proj"))
RELATIONS = ("query", "key", "value")


@contextmanager
def captured_outputs(modules: Mapping[str, nn.Module]) -> Iterator[dict[str, Any]]:
    """Record each module's forward output under its name while the block runs; hooks removed after."""
    captured: dict[str, Any] = {}

    def recorder(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            captured[name] = output

        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in modules.items()]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def last_layer_projections(model: PreTrainedModel) -> dict[str, nn.Module] | None:
    """The last attention module's query, key and value projections, or None when it has none."""
    found = None
    for module in model.modules():
        for names in PROJECTION_NAMES:
            projections = [getattr(module, name, None) for name in names]
            if all(isinstance(projection, nn.Module) for projection in projections):
                found = dict(zip(RELATIONS, projections, strict=True))
    return found


def default_attention_layer_map(teacher_layers: int, student_layers: int) -> list[tuple[int, int]]:
    """0-based pairs: student layer m (1-based) <- teacher layer m * Lt / Ls, so last maps to last."""
    return [(max(t - 1, 0), s - 1) for t, s in default_layer_map(teacher_layers, student_layers)[1:]]


@implements(AttentionMethod)
class AttentionDistillation(TeacherMethod):
    """Response term + attention_weight * (TinyBERT map loss or MiniLMv2 Q/K/V relation loss)."""

    needs_eager_attention = True

    def __init__(self, spec: AttentionMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.spec: AttentionMethod = spec
        teacher = self.frozen_teacher
        if spec.style == "tinybert":
            self._check_tinybert(teacher)
        else:
            self._check_minilm(teacher)

    def _check_tinybert(self, teacher: PreTrainedModel) -> None:
        """Head counts must match and layer indices be in range; sets self.layer_map."""
        teacher_heads = int(teacher.config.num_attention_heads)
        student_heads = int(self.student.config.num_attention_heads)
        if teacher_heads != student_heads:
            raise UserError(
                f"style 'tinybert' matches attention maps head to head, but the teacher has "
                f"{teacher_heads} heads and the student {student_heads}; use style 'minilm', "
                "which works with any head counts",
                param="method.style",
            )
        teacher_layers, student_layers = num_layers(teacher), num_layers(self.student)
        if self.spec.layer_map is None:
            self.layer_map = default_attention_layer_map(teacher_layers, student_layers)
        else:
            self.layer_map = [(int(t), int(s)) for t, s in self.spec.layer_map]
        check_layer_map(
            self.layer_map,
            teacher_limit=teacher_layers - 1,
            student_limit=student_layers - 1,
            param="method.layer_map",
            what="0-based transformer layers",
        )
        logger.info("tinybert attention transfer over layers %s (teacher, student)", self.layer_map)

    def _check_minilm(self, teacher: PreTrainedModel) -> None:
        """Both models expose last-layer Q/K/V projections whose widths split into the relation heads."""
        if self.spec.layer_map is not None:
            logger.warning("method.layer_map is ignored by style 'minilm', which uses the last layer only")
        widths: list[int] = []
        sides = []
        for side, model in (("teacher", teacher), ("student", self.student)):
            projections = last_layer_projections(model)
            if projections is None:
                raise UserError(
                    f"style 'minilm' needs the query, key and value projections of the last attention layer, "
                    f"which the {side} ({type(model).__name__}) does not expose",
                    param="method.style",
                )
            sides.append((side, projections))
            widths += [w for w in (getattr(p, "out_features", None) for p in projections.values()) if w]
        self.relation_heads = self.spec.relation_heads or default_relation_heads(
            widths, [int(teacher.config.num_attention_heads), int(self.student.config.num_attention_heads)]
        )
        for side, projections in sides:
            for relation, projection in projections.items():
                width = getattr(projection, "out_features", None)
                if width is not None and width % self.relation_heads:
                    raise UserError(
                        f"the {side}'s {relation} width {width} does not split into "
                        f"{self.relation_heads} relation heads; choose relation_heads dividing it",
                        param="method.relation_heads",
                    )
        logger.info("minilm relation transfer on the last layer with %d relation heads", self.relation_heads)

    def teacher_fields(self) -> TeacherFields:
        """Logits and the mapped layers' attention maps (tinybert) or last-layer Q/K/V states (minilm)."""
        teacher = self.frozen_teacher
        fields = response_fields(self.task, self.spec, teacher, self.student)
        if self.spec.style == "tinybert":
            heads = int(teacher.config.num_attention_heads)
            maps = {
                f"attention_{t}": TeacherField((heads, "L", "L"))
                for t in sorted({t for t, _ in self.layer_map})
            }
            return {**fields, **maps}
        projections = last_layer_projections(teacher)
        assert projections is not None
        for relation, projection in projections.items():
            width = getattr(projection, "out_features", None) or int(teacher.config.hidden_size)
            fields[relation] = TeacherField(("L", int(width)))
        return fields

    def teacher_pass(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The logits and attention fields of one batch."""
        teacher = self.frozen_teacher
        if self.spec.style == "tinybert":
            out = teacher(**inputs, output_attentions=True)
            check_attentions(out.attentions)
            return {"logits": out.logits, **{f"attention_{t}": out.attentions[t] for t, _ in self.layer_map}}
        projections = last_layer_projections(teacher)
        assert projections is not None
        with captured_outputs(projections) as states:
            logits = teacher(**inputs).logits
        return {"logits": logits, **{relation: states[relation] for relation in RELATIONS}}

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Response term plus the weighted attention term of the chosen style."""
        targets = self.teacher_targets(batch)
        mask = batch["attention_mask"].bool()
        if self.spec.style == "tinybert":
            student_logits, attention, parts = self._tinybert_terms(batch, targets, mask)
        else:
            student_logits, attention, parts = self._minilm_terms(batch, targets, mask)
        response, terms = response_loss(self.task, self.spec, student_logits, targets, batch["labels"])
        loss = response + self.spec.attention_weight * attention
        return loss, {**terms, "loss": loss.item(), "attention": attention.item(), **parts}

    def _tinybert_terms(
        self, batch: dict[str, Tensor], targets: dict[str, Tensor], mask: Tensor
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """The student's logits and the mean attention-map MSE over the mapped layers."""
        student_out = self.student(**model_inputs(batch), output_attentions=True)
        check_attentions(student_out.attentions)
        losses = [
            attention_map_loss(student_out.attentions[s], targets[f"attention_{t}"], mask=mask)
            for t, s in self.layer_map
        ]
        return student_out.logits, torch.stack(losses).mean(), {}

    def _minilm_terms(
        self, batch: dict[str, Tensor], targets: dict[str, Tensor], mask: Tensor
    ) -> tuple[Tensor, Tensor, dict[str, float]]:
        """The student's logits and the sum of the Q-Q, K-K and V-V relation losses (MiniLMv2)."""
        student_projections = last_layer_projections(self.student)
        assert student_projections is not None
        with captured_outputs(student_projections) as student_states:
            student_logits = self.student(**model_inputs(batch)).logits
        relations = {
            relation: self_attention_relation_loss(
                student_states[relation], targets[relation], num_heads=self.relation_heads, mask=mask
            )
            for relation in RELATIONS
        }
        parts = {f"relation_{relation}": value.item() for relation, value in relations.items()}
        return student_logits, torch.stack(list(relations.values())).sum(), parts


def check_attentions(attentions: Any) -> None:
    """Raise unless a model returned its attention maps (it must be loaded with eager attention)."""
    if not attentions:
        raise RuntimeError("the model returned no attention maps; load it with attn_implementation='eager'")


def default_relation_heads(widths: list[int], head_counts: list[int]) -> int:
    """The most relation heads, up to the larger model's head count, that split every projection width."""
    common = math.gcd(*widths) if widths else 1
    limit = max(head_counts)
    return max(d for d in range(1, min(common, limit) + 1) if common % d == 0)
