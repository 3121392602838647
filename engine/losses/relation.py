"""Relational KD (Park et al. 2019): match the geometry of a batch's embeddings, not the embeddings."""

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.losses.masking import compute_dtype, outside_autocast, zero_loss


@outside_autocast
def rkd_distance_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Park et al. 2019 ("Relational Knowledge Distillation"), distance-wise.

    d_ij = |e_i - e_j|_2 over [B, D] embeddings (D may differ between student and teacher), each set
    normalised by mu = mean of d_ij over distinct pairs i != j;
    loss = mean over ordered pairs i != j of smooth_L1(d_ij^s / mu^s - d_ij^t / mu^t) (Huber, delta = 1).
    B < 2 -> 0. Teacher side is detached.
    """
    _check_embeddings(student, teacher)
    if student.shape[0] < 2:
        return zero_loss(student)
    student_distances = _normalized_distances(student.to(compute_dtype(student)))
    teacher_distances = _normalized_distances(teacher.detach().to(compute_dtype(student)))
    return F.smooth_l1_loss(student_distances, teacher_distances, beta=1.0)


@outside_autocast
def rkd_angle_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Park et al. 2019 ("Relational Knowledge Distillation"), angle-wise.

    cos_ijk = <e_i - e_j, e_k - e_j> / (|e_i - e_j| |e_k - e_j|), the angle at anchor j, over [B, D]
    embeddings (D may differ between student and teacher);
    loss = mean over ordered triplets of distinct i, j, k of smooth_L1(cos_ijk^s - cos_ijk^t) (delta = 1).
    B < 3 -> 0. Teacher side is detached.
    """
    _check_embeddings(student, teacher)
    if student.shape[0] < 3:
        return zero_loss(student)
    student_angles = _anchor_cosines(student.to(compute_dtype(student)))
    teacher_angles = _anchor_cosines(teacher.detach().to(compute_dtype(student)))
    return F.smooth_l1_loss(student_angles, teacher_angles, beta=1.0)


def _check_embeddings(student: Tensor, teacher: Tensor) -> None:
    """Raise ValueError unless both are [B, D] with the same B."""
    if student.dim() != 2 or teacher.dim() != 2 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"embeddings must be [batch, dim] with the same batch, got {tuple(student.shape)} "
            f"and {tuple(teacher.shape)}"
        )


def _normalized_distances(embeddings: Tensor) -> Tensor:
    """Distances of the B (B - 1) ordered distinct pairs, divided by their mean."""
    batch = embeddings.shape[0]
    # Differences rather than the Gram-matrix identity: exact, and no sqrt(0) on the diagonal.
    differences = embeddings[:, None, :] - embeddings[None, :, :]
    distinct = ~torch.eye(batch, dtype=torch.bool, device=embeddings.device)
    distances = differences[distinct].norm(dim=-1)
    return distances / distances.mean().clamp(min=torch.finfo(distances.dtype).tiny)


def _anchor_cosines(embeddings: Tensor) -> Tensor:
    """cos of the angle at j between e_i - e_j and e_k - e_j, for every ordered distinct (i, j, k)."""
    batch = embeddings.shape[0]
    directions = F.normalize(embeddings[None, :, :] - embeddings[:, None, :], dim=-1)  # [j, i, D]
    cosines = directions @ directions.transpose(1, 2)  # [j, i, k]
    index = torch.arange(batch, device=embeddings.device)
    distinct = (
        (index[:, None, None] != index[None, :, None])
        & (index[:, None, None] != index[None, None, :])
        & (index[None, :, None] != index[None, None, :])
    )
    return cosines[distinct]
