"""Token-level losses over a long sequence, a chunk of positions at a time, so that the full-vocabulary
softmaxes of a whole batch are never held at once, in the forward pass or the backward one.

A per-position loss over [batch, length, vocabulary] logits keeps several softmax-sized tensors alive
for its backward pass (both models' log-probabilities, probabilities, differences). Here each chunk of
positions is computed, differentiated with respect to the student's logits at once, and freed: the
forward pass fills a gradient buffer the size of the logits, and the backward pass only scales it.
Peak memory is the logits, that buffer, and one chunk's intermediates (bench/lm/loss_memory.py).
"""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from engine.losses.masking import compute_dtype

# Elements of one [batch, chunk, vocabulary] slice. On a CPU 2^22 float32 values (16 MiB per
# intermediate) stay under the size past which glibc maps and unmaps each allocation afresh (32 MiB),
# so the chunks reuse memory instead of faulting pages in; a GPU's caching allocator reuses any size,
# and larger chunks launch fewer kernels.
CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**24}

# per_position(student_chunk, *other_chunks) -> [batch, chunk] loss of each position.
PerPosition = Callable[..., Tensor]


def chunk_length(
    batch: int, vocabulary: int, *, device_type: str = "cpu", elements: int | None = None
) -> int:
    """Positions per chunk so that one [batch, chunk, vocabulary] slice holds about `elements` values
    (default: the device's CHUNK_ELEMENTS)."""
    budget = elements or CHUNK_ELEMENTS.get(device_type, CHUNK_ELEMENTS["cpu"])
    return max(1, budget // max(1, batch * vocabulary))


def chunked_position_sum(
    per_position: PerPosition, student: Tensor, others: tuple[Tensor, ...], mask: Tensor, chunk: int
) -> Tensor:
    """sum over positions where mask of per_position(student, *others), `chunk` positions of dim 1 at a time.

    student [B, T, ...] (the only input that receives a gradient), others [B, T, ...] each, mask bool
    [B, T]. Chunks without a counted position are skipped. The sum is in at least float32.
    """
    return _ChunkedPositionSum.apply(per_position, chunk, mask, student, *others)


def _masked_chunk_sum(
    per_position: PerPosition, mask: Tensor, student: Tensor, others: list[Tensor]
) -> Tensor:
    values = per_position(student, *others)
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum()


class _ChunkedPositionSum(torch.autograd.Function):
    """The chunked sum, its gradient with respect to the student computed chunk by chunk in forward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, per_position: PerPosition, chunk: int, mask: Tensor, student: Tensor, *others: Tensor
    ) -> Tensor:
        """The sum; with a student that needs a gradient, that gradient too, kept for backward."""
        needs_grad = bool(ctx.needs_input_grad[3])
        total = torch.zeros((), dtype=compute_dtype(student), device=student.device)
        grad = torch.empty_like(student, memory_format=torch.contiguous_format) if needs_grad else None
        for start in range(0, student.shape[1], chunk):
            window = slice(start, start + chunk)
            counted = mask[:, window]
            if not bool(counted.any()):
                if grad is not None:
                    grad[:, window].zero_()
                continue
            piece = student[:, window].detach()
            parts = [other[:, window] for other in others]
            if grad is None:
                total += _masked_chunk_sum(per_position, counted, piece, parts)
                continue
            with torch.enable_grad():
                piece.requires_grad_(True)
                value = _masked_chunk_sum(per_position, counted, piece, parts)
                (piece_grad,) = torch.autograd.grad(value, piece)
            grad[:, window] = piece_grad
            total += value.detach()
        ctx.save_for_backward(grad)
        ctx.used = False
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        """The stored gradient scaled in place by the upstream one (so this graph runs backward once)."""
        if ctx.used:
            raise RuntimeError("a chunked loss's graph can be run backward only once")
        ctx.used = True
        (grad,) = ctx.saved_tensors
        others = (None,) * (len(ctx.needs_input_grad) - 4)
        if grad is None:
            return None, None, None, None, *others
        return None, None, None, grad.mul_(grad_output.to(grad.dtype)), *others
