"""What every method taught by a frozen teacher shares: the teacher's outputs, stored or computed live."""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel

from distillery.jobspec.methods import SoftTargets, effective_top_k
from engine.batching import EXAMPLE_INDEX, PACKED_SEGMENTS
from engine.lm.packing import LENGTH, place_examples
from engine.losses import topk_teacher_targets
from engine.methods.base import Method, MethodContext, Task, model_inputs
from engine.teacher_cache import TeacherPass
from engine.teacher_cache.fields import TeacherField, TeacherFields

StoredLookup = Callable[[Tensor, int, torch.device], dict[str, Tensor]]


class TeacherMethod(Method):
    """A method whose loss reads named teacher outputs: from the teacher cache when attached, else live.

    Subclasses declare `teacher_fields()` and compute them in `teacher_pass()`; the same fields come
    from the stored pass or the live teacher, so the loss cannot tell which.
    """

    def __init__(self, spec: Any, ctx: MethodContext) -> None:
        super().__init__(spec, ctx)
        self._stored: StoredLookup | None = None

    def teacher_fields(self) -> TeacherFields:
        """The per-example outputs the loss reads, and their shapes."""
        raise NotImplementedError

    def teacher_settings(self) -> dict[str, Any]:
        """Method settings that change the values of the fields (part of the cache key)."""
        return {}

    def teacher_pass(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The fields for a batch of model inputs; the caller disables gradients."""
        raise NotImplementedError

    def teacher_pass_for(
        self,
        teacher_dir: Path,
        *,
        precision: str = "fp32",
        autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
        device: torch.device | None = None,
        pad_token_id: int = 0,
    ) -> TeacherPass:
        """The pass that computes this method's teacher outputs once, for the teacher cache."""
        return TeacherPass(
            fields=self.teacher_fields(),
            settings=self.teacher_settings(),
            run=self.teacher_pass,
            teacher_dir=teacher_dir,
            precision=precision,
            autocast=autocast,
            device=device or torch.device("cpu"),
            pad_token_id=pad_token_id,
        )

    def stored_share(self) -> float:
        """The share of train batches whose teacher outputs the cache can serve (GKD's samples are new)."""
        return 1.0

    def attach_stored_outputs(self, lookup: StoredLookup | None) -> None:
        """Read train batches' teacher outputs from the cache (None: run the teacher live)."""
        self._stored = lookup

    def teacher_targets(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The batch's teacher outputs: looked up by example index when stored, else from the teacher.

        Stored outputs are per example; in a packed batch each example's are moved to where it lies.
        """
        indices = batch.get(EXAMPLE_INDEX)
        if self._stored is not None and indices is not None:
            input_ids = batch["input_ids"]
            segments = batch.get(PACKED_SEGMENTS)
            if segments is None:
                return self._stored(indices, input_ids.shape[1], input_ids.device)
            stored = self._stored(indices, int(segments[:, LENGTH].max()), input_ids.device)
            shape = (input_ids.shape[0], input_ids.shape[1])
            return {name: place_examples(values, segments, shape) for name, values in stored.items()}
        with torch.no_grad():
            return self.teacher_pass(model_inputs(batch))


def vocabulary_width(teacher: PreTrainedModel, student: PreTrainedModel) -> int:
    """The vocabulary both models share, when one of them pads its output layer."""
    return min(int(teacher.config.vocab_size), int(student.config.vocab_size))


def response_fields(
    task: Task, soft: SoftTargets, teacher: PreTrainedModel, student: PreTrainedModel
) -> TeacherFields:
    """The teacher outputs the response term reads: logits, or a causal LM's top-k log-probabilities."""
    if task == "sequence_classification":
        return {"logits": TeacherField((int(teacher.config.num_labels),), dtype="float32")}
    width = vocabulary_width(teacher, student)
    return token_fields(stored_k(soft.top_k, width), width)


def stored_k(top_k: int | str | None, width: int) -> int | None:
    """The k of a causal LM's top-k targets over `width` tokens; None for every logit (exact).

    A k that covers the vocabulary gives the exact loss (no tail), stored smaller as plain logits.
    """
    k = effective_top_k(top_k)
    return None if k is None or k >= width else k


def token_fields(k: int | None, width: int) -> TeacherFields:
    """A causal LM's per-token teacher outputs: the top k log-probabilities and the tail, or every logit."""
    if k is None:
        return {"logits": TeacherField(("L", width))}
    return {
        "topk_logprobs": TeacherField(("L", k)),
        "topk_indices": TeacherField(("L", k), dtype="int32"),
        "tail_logprob": TeacherField(("L",)),
    }


def response_settings(task: Task, soft: SoftTargets, width: int | None) -> dict[str, Any]:
    """Settings that change the stored response fields: top-k log-probabilities depend on T."""
    if task != "causal_lm" or width is None:
        return {}
    return token_settings(stored_k(soft.top_k, width), soft.temperature)


def token_settings(k: int | None, temperature: float) -> dict[str, Any]:
    """The cache-key settings of a causal LM's per-token outputs: top-k log-probabilities depend on T."""
    return {"temperature": temperature} if k is not None else {}


def response_targets(task: Task, soft: SoftTargets, logits: Tensor, width: int | None) -> dict[str, Tensor]:
    """The response fields from the teacher's logits (a causal LM's cut to the shared vocabulary)."""
    if task == "sequence_classification" or width is None:
        return {"logits": logits}
    return token_targets(logits[..., :width], stored_k(soft.top_k, width), soft.temperature)


def token_targets(logits: Tensor, k: int | None, temperature: float) -> dict[str, Tensor]:
    """A causal LM's per-token fields from its logits: the logits themselves, or their top k at T."""
    if k is None:
        return {"logits": logits}
    return topk_teacher_targets(logits, k=k, temperature=temperature)
