"""Plain supervised training, no teacher: trains teachers and is the control for a distillation."""

from torch import Tensor

from distillery.jobspec import SupervisedMethod
from engine.batching import IGNORE_INDEX
from engine.losses.fused_head import fused_head_loss
from engine.methods.base import Method, MethodContext, cross_entropy, model_inputs, next_token_labels
from engine.methods.registry import implements
from engine.methods.student_head import (
    fused_head_usable,
    last_hidden_state,
    output_layer,
    plain_output_layer,
)


@implements(SupervisedMethod)
class SupervisedDistillation(Method):
    """Cross-entropy on the labels (next-token cross-entropy for a causal LM)."""

    def __init__(self, spec: SupervisedMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self._teacher = (None,)  # a teacher in the spec is only compared against in the report
        lm = ctx.task == "causal_lm" and ctx.fused_head_loss
        self.fused_head = lm and plain_output_layer(self.student)

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the student on the batch's labels."""
        if fused_head_usable(self.student, self.fused_head):
            hidden = last_hidden_state(self.student, model_inputs(batch))
            labels = next_token_labels(batch["labels"])
            loss = fused_head_loss(
                hidden, *output_layer(self.student), labels, ce_weight=1.0, ignore_index=IGNORE_INDEX
            ).loss
        else:
            logits = self.student(**model_inputs(batch)).logits
            loss = cross_entropy(self.task, logits, batch["labels"])
        return loss, {"loss": loss.item(), "ce": loss.item()}
