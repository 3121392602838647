"""Self-distillation (Zhang et al. 2019, "Be Your Own Teacher"): intermediate exits learn from the deepest."""

import copy
import logging

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from distillery.jobspec.methods import SelfMethod
from engine.errors import UserError
from engine.losses import hard_target_loss, hidden_state_loss, soft_target_loss
from engine.methods.base import Method, MethodContext, model_inputs
from engine.methods.feature import num_layers
from engine.methods.registry import implements

logger = logging.getLogger(__name__)


class ExitHead(nn.Module):
    """A copy of the model's classification head applied to an intermediate layer's output."""

    def __init__(self, pooler: nn.Module | None, dropout: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.pooler = copy.deepcopy(pooler)
        self.dropout = copy.deepcopy(dropout)
        self.classifier = copy.deepcopy(classifier)

    def forward(self, sequence_output: Tensor) -> Tensor:
        """Logits [B, C] from hidden states [B, T, H], as the model's own head computes them."""
        if self.pooler is None:
            return self.classifier(sequence_output)
        return self.classifier(self.dropout(self.pooler(sequence_output)))


def encoder_layers(model: PreTrainedModel) -> nn.ModuleList | None:
    """The ModuleList of transformer layers of a BERT-style encoder, or None."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    return layers if isinstance(layers, nn.ModuleList) else None


def model_head(model: PreTrainedModel) -> ExitHead | None:
    """A copy of the head: BERT's pooler + dropout + linear, or a RoBERTa-style head on the sequence."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Module):
        return None
    pooler = getattr(model.base_model, "pooler", None)
    if isinstance(pooler, nn.Module) and isinstance(classifier, nn.Linear):
        dropout = getattr(model, "dropout", None)
        return ExitHead(pooler, dropout if isinstance(dropout, nn.Module) else nn.Identity(), classifier)
    if pooler is None and not isinstance(classifier, nn.Linear):
        return ExitHead(None, nn.Identity(), classifier)
    return None


def default_exits(depth: int) -> list[int]:
    """Every other depth counting down from the last one (exclusive), at least depth 1."""
    return sorted(range(depth - 2, 0, -2)) or [1]


@implements(SelfMethod)
class SelfDistillation(Method):
    """The deepest head learns from labels; each exit from labels and the deepest's soft targets."""

    def __init__(self, spec: SelfMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self.spec: SelfMethod = spec
        if encoder_layers(self.student) is None or model_head(self.student) is None:
            raise UserError(
                f"self-distillation needs a BERT- or RoBERTa-style encoder classifier; "
                f"{type(self.student).__name__} is not one",
                param="method.type",
            )
        self.depth = num_layers(self.student)
        self.exits = self._checked_exits()
        self.exit_heads = nn.ModuleDict({str(depth): model_head(self.student) for depth in self.exits})
        logger.info("self-distillation with exits at depths %s of %d", self.exits, self.depth)

    def _checked_exits(self) -> list[int]:
        """Exit depths below the full one, validated against the model, with keep_exit among them."""
        if self.depth < 2:
            raise UserError("self-distillation needs a student with at least 2 layers", param="method.exits")
        if self.spec.exits is None:
            exits = default_exits(self.depth)
        else:
            too_deep = [depth for depth in self.spec.exits if depth > self.depth]
            if too_deep:
                raise UserError(
                    f"exits {too_deep} are deeper than the student's {self.depth} layers",
                    param="method.exits",
                )
            # The full depth is the model's own head, the deepest classifier, not an extra exit.
            exits = sorted({depth for depth in self.spec.exits if depth < self.depth})
            if not exits:
                raise UserError(
                    f"give at least one exit below the student's full depth {self.depth}",
                    param="method.exits",
                )
        keep = self.spec.keep_exit
        if keep is not None and keep not in exits and keep != self.depth:
            raise UserError(
                f"keep_exit {keep} is neither an exit ({exits}) nor the full depth {self.depth}",
                param="method.keep_exit",
            )
        return exits

    def exit_logits(self, batch: dict[str, Tensor]) -> tuple[dict[int, Tensor], tuple[Tensor, ...]]:
        """Logits at every exit depth and at the full depth (the model's own head), and the hidden states."""
        outputs = self.student(**model_inputs(batch), output_hidden_states=True)
        logits = {depth: self.exit_heads[str(depth)](outputs.hidden_states[depth]) for depth in self.exits}
        logits[self.depth] = outputs.logits
        return logits, outputs.hidden_states

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """CE of the deepest head plus, summed over exits, (1-alpha) CE + alpha KD + feature_weight * hint."""
        labels = batch["labels"]
        logits, hidden_states = self.exit_logits(batch)
        deepest = logits[self.depth]
        ce_deepest = hard_target_loss(deepest, labels)
        mask = batch["attention_mask"].bool()
        alpha, hint_weight = self.spec.alpha, self.spec.feature_weight
        ce_exits, kd_exits, hints = [], [], []
        for depth in self.exits:
            ce_exits.append(hard_target_loss(logits[depth], labels))
            kd_exits.append(
                soft_target_loss(logits[depth], deepest.detach(), temperature=self.spec.temperature)
            )
            if hint_weight > 0:
                hints.append(
                    hidden_state_loss(hidden_states[depth], hidden_states[self.depth].detach(), mask=mask)
                )
        ce, kd = torch.stack(ce_exits), torch.stack(kd_exits)
        loss = ce_deepest + ((1.0 - alpha) * ce + alpha * kd).sum()
        terms = {"ce": ce_deepest.item(), "ce_exits": ce.mean().item(), "kd": kd.mean().item()}
        if hints:
            hint = torch.stack(hints)
            loss = loss + hint_weight * hint.sum()
            terms["feature"] = hint.mean().item()
        with torch.no_grad():
            for depth, depth_logits in logits.items():
                terms[f"accuracy_depth_{depth}"] = (
                    (depth_logits.argmax(dim=-1) == labels).float().mean().item()
                )
        return loss, {"loss": loss.item(), **terms}

    def export_model(self) -> PreTrainedModel:
        """The student truncated at keep_exit with that exit's head as its own, or the full student."""
        keep = self.spec.keep_exit
        if keep is None or keep == self.depth:
            return self.student
        return self.truncated_model(keep)

    def truncated_model(self, depth: int) -> PreTrainedModel:
        """A copy of the student with its first `depth` layers and the exit head at `depth` as its head."""
        model = copy.deepcopy(self.student)
        layers = encoder_layers(model)
        assert layers is not None
        model.base_model.encoder.layer = nn.ModuleList(list(layers)[:depth])
        model.config.num_hidden_layers = depth
        head = self.exit_heads[str(depth)]
        if head.pooler is not None:
            model.base_model.pooler.load_state_dict(head.pooler.state_dict())
        model.classifier.load_state_dict(head.classifier.state_dict())
        model.zero_grad(set_to_none=True)
        return model
