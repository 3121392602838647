"""Plain supervised training, no teacher: trains teachers and is the control for a distillation."""

from torch import Tensor

from distillery.jobspec import SupervisedMethod
from engine.methods.base import Method, MethodContext, cross_entropy, model_inputs
from engine.methods.registry import implements


@implements(SupervisedMethod)
class SupervisedDistillation(Method):
    """Cross-entropy on the labels (next-token cross-entropy for a causal LM)."""

    def __init__(self, spec: SupervisedMethod, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self._teacher = (None,)  # a teacher in the spec is only compared against in the report

    def training_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the student on the batch's labels."""
        logits = self.student(**model_inputs(batch)).logits
        loss = cross_entropy(self.task, logits, batch["labels"])
        return loss, {"loss": loss.item(), "ce": loss.item()}
