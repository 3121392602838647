"""A causal LM's output layer and its token-level losses computed together, a chunk of positions at a time.

The student's [batch, length, vocabulary] logits are never held whole. Each chunk of positions is
projected through the output layer (under the caller's autocast, as the model's own head would be), its
soft-target and cross-entropy terms are differentiated with respect to that chunk's logits at once (in
the smaller chunks of engine/losses/chunking.py), and that gradient is carried through the projection
to the hidden states, the weight and the bias before the chunk is freed; the backward pass only scales
them. Peak memory is the weight's gradient, one chunk's logits and their gradient, and one loss chunk's
intermediates, whatever the sequence's length (bench/lm/loss_memory.py).
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from distillery.jobspec.methods import Divergence
from engine.losses.chunking import PerPosition, chunk_length
from engine.losses.divergence import (
    check_divergence,
    cross_entropy_terms,
    soft_target_terms,
    topk_target_terms,
)

# Elements of one chunk's [batch, chunk, vocabulary] logits. Larger than a loss chunk, because each
# chunk adds its share into the whole weight's gradient, a pass over [vocabulary, hidden] values.
HEAD_CHUNK_ELEMENTS = {"cpu": 2**25, "cuda": 2**25}
TOPK_FIELDS = ("topk_logprobs", "topk_indices", "tail_logprob")


class HeadLoss(NamedTuple):
    """The weighted loss (differentiable) and its two terms (detached, for logging)."""

    loss: Tensor
    kd: Tensor
    ce: Tensor


@dataclass(frozen=True)
class _Plan:
    """What the chunks compute: each term's per-position function and weight, and the chunk sizes."""

    kd_terms: PerPosition | None
    ce_terms: PerPosition | None
    kd_weight: float
    ce_weight: float
    width: int
    ignore_index: int
    chunk: int
    loss_chunk: int


def fused_head_loss(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    labels: Tensor,
    *,
    teacher: dict[str, Tensor] | None = None,
    temperature: float = 1.0,
    divergence: Divergence = "forward_kl",
    jsd_beta: float = 0.5,
    kd_weight: float = 1.0,
    ce_weight: float | None = None,
    ignore_index: int = -100,
    chunk_size: int | None = None,
    loss_chunk_size: int | None = None,
) -> HeadLoss:
    """kd_weight * T^2 * D(p_teacher^T, p_student^T) + ce_weight * CE over student logits hidden W^T + b.

    hidden [B, T, H], weight [V, H], bias [V] or None. labels [B, T]: the token each position predicts
    (a causal LM's shift is the caller's), ignore_index where the position does not count; both terms
    are means over the counted positions. teacher: {"logits": [B, T, V']}, compared over the vocabulary
    both share, or the top-k fields of topk_teacher_targets; None for cross-entropy alone. ce_weight
    None: no cross-entropy (its term reads 0). The same value and gradients as soft_target_loss or
    topk_soft_target_loss plus hard_target_loss on F.linear(hidden, weight, bias).
    chunk_size: positions per projected chunk (default: HEAD_CHUNK_ELEMENTS); loss_chunk_size:
    positions per loss chunk within it (default: the loss's CHUNK_ELEMENTS).
    """
    if hidden.dim() != 3 or labels.shape != hidden.shape[:2]:
        raise ValueError(f"hidden {tuple(hidden.shape)} is not [B, T, H] with labels {tuple(labels.shape)}")
    if teacher is None and ce_weight is None:
        raise ValueError("a fused head loss needs a teacher, a cross-entropy weight, or both")
    check_divergence(temperature, divergence, jsd_beta)
    vocabulary = weight.shape[0]
    batch, device_type = hidden.shape[0], hidden.device.type
    kd_terms, width = None, vocabulary
    tensors: tuple[Tensor, ...] = ()
    if teacher is not None and "logits" in teacher:
        width = min(vocabulary, teacher["logits"].shape[-1])
        kd_terms = soft_target_terms(temperature, divergence, jsd_beta)
        tensors = (teacher["logits"][..., :width],)
    elif teacher is not None:
        kd_terms = topk_target_terms(temperature, divergence, jsd_beta)
        tensors = tuple(teacher[name] for name in TOPK_FIELDS)
    chunk = chunk_size or chunk_length(batch, vocabulary, elements=HEAD_CHUNK_ELEMENTS.get(device_type))
    loss_chunk = min(chunk, loss_chunk_size or chunk_length(batch, vocabulary, device_type=device_type))
    plan = _Plan(
        kd_terms=kd_terms,
        ce_terms=cross_entropy_terms(ignore_index) if ce_weight is not None else None,
        kd_weight=kd_weight * temperature**2,
        ce_weight=ce_weight or 0.0,
        width=width,
        ignore_index=ignore_index,
        chunk=chunk,
        loss_chunk=loss_chunk,
    )
    loss, kd, ce = _FusedHeadLoss.apply(plan, labels, hidden, weight, bias, *tensors)
    return HeadLoss(loss, kd * temperature**2, ce)


class _FusedHeadLoss(torch.autograd.Function):
    """The chunked loss; its gradients with respect to the hidden states, weight and bias taken in forward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        plan: _Plan,
        labels: Tensor,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        *teacher: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The weighted loss and its two terms, each the mean over the counted positions."""
        needs = ctx.needs_input_grad
        want = (needs[2], needs[3], bias is not None and needs[4])
        inputs = (hidden, weight, bias)
        grads = [
            torch.zeros_like(tensor) if wanted else None for tensor, wanted in zip(inputs, want, strict=True)
        ]
        dtype = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
        mask = labels != plan.ignore_index
        count = mask.sum().clamp(min=1).to(dtype)
        sums = torch.zeros(2, dtype=dtype, device=hidden.device)
        for start in range(0, hidden.shape[1], plan.chunk):
            window = slice(start, start + plan.chunk)
            counted = mask[:, window]
            if not bool(counted.any()):
                continue
            piece = hidden[:, window]
            logits = F.linear(piece, weight, bias)
            parts = [tensor[:, window] for tensor in teacher]
            grad_logits = _chunk_terms(
                plan, logits, labels[:, window], counted, parts, count, sums, any(want)
            )
            if grad_logits is not None:
                _through_the_head(grad_logits, piece, weight, grads, window)
        ctx.grads = grads
        kd, ce = (sums / count).unbind()
        ctx.mark_non_differentiable(kd, ce)
        return plan.kd_weight * kd + plan.ce_weight * ce, kd, ce

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        """The gradients found in forward, scaled in place by the upstream one (so backward runs once)."""
        if ctx.grads is None:
            raise RuntimeError("a fused head loss's graph can be run backward only once")
        grads, ctx.grads = ctx.grads, None
        scaled = [grad.mul_(grad_loss.to(grad.dtype)) if grad is not None else None for grad in grads]
        teacher = (None,) * (len(ctx.needs_input_grad) - 5)
        return None, None, *scaled, *teacher


def _chunk_terms(
    plan: _Plan,
    logits: Tensor,
    labels: Tensor,
    counted: Tensor,
    teacher: list[Tensor],
    count: Tensor,
    sums: Tensor,
    want_grad: bool,
) -> Tensor | None:
    """Add one chunk's summed terms to `sums`; the gradient of its weighted loss w.r.t. its logits.

    The gradient stays in the loss's precision (at least float32), for the weight's gradient to add up.
    """
    dtype = sums.dtype
    grad = torch.empty(logits.shape, dtype=dtype, device=logits.device) if want_grad else None
    with torch.autocast(device_type=logits.device.type, enabled=False):
        for start in range(0, logits.shape[1], plan.loss_chunk):
            window = slice(start, start + plan.loss_chunk)
            kept = counted[:, window]
            if not bool(kept.any()):
                if grad is not None:
                    grad[:, window] = 0
                continue
            piece = logits[:, window].detach().to(dtype).requires_grad_(want_grad)
            with torch.set_grad_enabled(want_grad):
                kd = ce = None
                if plan.kd_terms is not None:
                    values = plan.kd_terms(piece[..., : plan.width], *[part[:, window] for part in teacher])
                    kd = _masked_sum(values, kept)
                if plan.ce_terms is not None:
                    ce = _masked_sum(plan.ce_terms(piece, labels[:, window]), kept)
                if grad is not None:
                    weighted = _weighted(kd, plan.kd_weight) + _weighted(ce, plan.ce_weight)
                    (grad[:, window],) = torch.autograd.grad(weighted / count, piece)
            for index, term in enumerate((kd, ce)):
                if term is not None:
                    sums[index] += term.detach()
    return grad


def _weighted(term: Tensor | None, weight: float) -> Tensor | float:
    """weight * term, or 0 for a term not computed."""
    return term * weight if term is not None else 0.0


def _masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    """The sum of `values` where `mask` (where(), so a non-finite uncounted value cannot leak in)."""
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum()


def _through_the_head(
    grad_logits: Tensor, hidden: Tensor, weight: Tensor, grads: list[Tensor | None], window: slice
) -> None:
    """Carry a chunk's logits gradient into the hidden states', weight's and bias's gradients.

    The hidden states' product runs as the logits' did (the caller's autocast); the weight's is added in
    place in the weight's precision, so no product the size of the weight is made per chunk.
    """
    grad_hidden, grad_weight, grad_bias = grads
    if grad_hidden is not None:
        grad_hidden[:, window] = torch.matmul(grad_logits, weight)
    flat_grad = grad_logits.reshape(-1, grad_logits.shape[-1])
    if grad_weight is not None:
        flat_hidden = hidden.reshape(-1, hidden.shape[-1])
        grad_weight.addmm_(flat_grad.T.to(grad_weight.dtype), flat_hidden.to(grad_weight.dtype))
    if grad_bias is not None:
        grad_bias += flat_grad.sum(dim=0).to(grad_bias.dtype)
