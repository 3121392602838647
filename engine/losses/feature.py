"""Feature-based loss on intermediate hidden states (FitNets hints)."""

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from engine.losses.masking import check_mask, compute_dtype, masked_mean, outside_autocast

FeatureDistance = Literal["mse", "cosine"]


@outside_autocast
def hidden_state_loss(
    student: Tensor,
    teacher: Tensor,
    *,
    kind: FeatureDistance = "mse",
    normalize: bool = True,
    mask: Tensor | None = None,
) -> Tensor:
    """FitNets (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets") hint loss on hidden states.

    student/teacher [B, T, H] or [B, H] of the same width (projection is the caller's job).
    normalize: layer-norm (no affine, eps 1e-5) each vector first.
    mse: mean over counted positions of (1/H) sum_h (s_h - t_h)^2;
    cosine: mean over counted positions of 1 - s.t / (|s| |t|).
    mask: bool [B, T] or [B], None = all count. Teacher side is detached.
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"student states {tuple(student.shape)} and teacher states {tuple(teacher.shape)} "
            "differ in shape; project the student to the teacher's width first"
        )
    if kind not in ("mse", "cosine"):
        raise ValueError(f"kind must be 'mse' or 'cosine', got {kind!r}")
    check_mask(mask, student.shape[:-1])

    dtype = compute_dtype(student)
    student_states = student.to(dtype)
    teacher_states = teacher.detach().to(dtype)
    if normalize:
        width = (student.shape[-1],)
        student_states = F.layer_norm(student_states, width)
        teacher_states = F.layer_norm(teacher_states, width)
    if kind == "mse":
        per_position = (student_states - teacher_states).pow(2).mean(dim=-1)
    else:
        per_position = 1.0 - F.cosine_similarity(student_states, teacher_states, dim=-1)
    return masked_mean(per_position, mask)
