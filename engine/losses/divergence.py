"""Response-based losses on output logits: soft targets (Hinton et al. 2015) and hard labels."""

from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from distillery.jobspec.methods import Divergence
from engine.losses.chunking import PerPosition, chunked_position_sum
from engine.losses.distributions import generalized_jsd, kl_divergence
from engine.losses.masking import check_mask, compute_dtype, masked_mean, outside_autocast

DIVERGENCES: tuple[str, ...] = get_args(Divergence)


@outside_autocast
def soft_target_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float,
    divergence: Divergence = "forward_kl",
    jsd_beta: float = 0.5,
    mask: Tensor | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """T^2 * D(p_teacher^T, p_student^T) averaged over positions where mask is True.

    Knowledge distillation, Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network"):
    p^T = softmax(logits / T); the T^2 factor keeps the gradient scale independent of T.
    logits [..., V] (classification: [B, V] -> mean per sample; causal LM: [B, T, V] -> mean per token).
    mask: bool [...] (same leading shape), None = all count. Teacher side is detached (no grad to teacher).
    forward_kl = KL(p_t || p_s); reverse_kl = KL(p_s || p_t);
    jsd (generalised, as in GKD, Agarwal et al. 2024): m = beta*p_t + (1-beta)*p_s,
        JSD = beta*KL(p_t||m) + (1-beta)*KL(p_s||m).
    Computed in at least float32; an all-masked batch gives 0 with the graph intact.
    chunk_size: for [B, T, V] logits, compute it chunk_size positions at a time, never holding the
    softmaxes of the whole sequence (engine/losses/chunking.py); the same value and gradient.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ in shape"
        )
    check_divergence(temperature, divergence, jsd_beta)
    check_mask(mask, student_logits.shape[:-1])
    per_position = soft_target_terms(temperature, divergence, jsd_beta)
    return temperature**2 * position_mean(per_position, student_logits, (teacher_logits,), mask, chunk_size)


def check_divergence(temperature: float, divergence: str, jsd_beta: float) -> None:
    """Raise ValueError unless T > 0, the divergence is known, and a JSD's beta lies in (0, 1)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if divergence == "jsd" and not 0 < jsd_beta < 1:
        raise ValueError(f"jsd_beta must be in (0, 1), got {jsd_beta}")


def soft_target_terms(temperature: float, divergence: str, jsd_beta: float) -> PerPosition:
    """per_position(student, teacher) logits [..., V] -> D(p_teacher^T, p_student^T) [...], without T^2."""

    def per_position(student: Tensor, teacher: Tensor) -> Tensor:
        dtype = compute_dtype(student)
        log_p_student = F.log_softmax(student.to(dtype) / temperature, dim=-1)
        log_p_teacher = F.log_softmax(teacher.detach().to(dtype) / temperature, dim=-1)
        return divergence_between(log_p_teacher, log_p_student, divergence, jsd_beta)

    return per_position


def divergence_between(
    log_p_teacher: Tensor, log_q_student: Tensor, divergence: str, jsd_beta: float
) -> Tensor:
    """The named divergence of the student from the teacher over the last axis (log-probabilities)."""
    if divergence == "forward_kl":
        return kl_divergence(log_p_teacher, log_q_student)
    if divergence == "reverse_kl":
        return kl_divergence(log_q_student, log_p_teacher)
    return generalized_jsd(log_p_teacher, log_q_student, beta=jsd_beta)


def position_mean(
    per_position: PerPosition,
    student: Tensor,
    others: tuple[Tensor, ...],
    mask: Tensor | None,
    chunk_size: int | None,
) -> Tensor:
    """Mean of per_position(student, *others) over the counted positions, in chunks over a long sequence.

    Chunked when chunk_size is given, the inputs are [B, T, ...] sequences and T is longer than a chunk.
    """
    if chunk_size is None or student.dim() < 3 or student.shape[1] <= chunk_size:
        return masked_mean(per_position(student, *others), mask)
    if mask is None:
        mask = torch.ones(student.shape[:2], dtype=torch.bool, device=student.device)
    total = chunked_position_sum(per_position, student, others, mask, chunk_size)
    return total / mask.sum().clamp(min=1).to(total.dtype)


# A teacher's tail log-mass is floored here, so a reverse KL against a near-certain teacher stays finite.
TAIL_LOGPROB_FLOOR = -30.0


@outside_autocast
def topk_soft_target_loss(
    student_logits: Tensor,
    teacher_topk_logprobs: Tensor,
    teacher_topk_indices: Tensor,
    teacher_tail_logprob: Tensor,
    *,
    temperature: float,
    divergence: Divergence = "forward_kl",
    jsd_beta: float = 0.5,
    mask: Tensor | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """T^2 * D(p_teacher^T, p_student^T) over the teacher's top k tokens plus one bucket for all others.

    Both tempered distributions are coarsened to k + 1 outcomes: the teacher's k most likely tokens
    (log-probabilities [..., k] at indices [..., k], taken from log_softmax(teacher / T)) and "any other
    token", whose teacher log-mass is `teacher_tail_logprob` [...] and whose student mass is the sum of
    p_student^T outside those k tokens. A divergence between coarsened distributions never exceeds the one
    between the full distributions (data processing) and equals it when the teacher has no mass outside
    its top k; with k covering the whole vocabulary there is no tail bucket and this is soft_target_loss.
    chunk_size: as in soft_target_loss.
    """
    if teacher_topk_logprobs.shape != teacher_topk_indices.shape:
        raise ValueError("teacher top-k log-probabilities and indices differ in shape")
    if teacher_topk_logprobs.shape[:-1] != student_logits.shape[:-1]:
        raise ValueError(
            f"teacher top-k {tuple(teacher_topk_logprobs.shape)} does not match student logits "
            f"{tuple(student_logits.shape)}"
        )
    check_mask(mask, student_logits.shape[:-1])
    per_position = topk_target_terms(temperature, divergence, jsd_beta)
    teacher = (teacher_topk_logprobs, teacher_topk_indices, teacher_tail_logprob)
    return temperature**2 * position_mean(per_position, student_logits, teacher, mask, chunk_size)


def topk_target_terms(temperature: float, divergence: str, jsd_beta: float) -> PerPosition:
    """per_position(student, top_logprobs, top_indices, tail) -> the top-k divergence [...], without T^2."""

    def per_position(student: Tensor, top_logprobs: Tensor, top_indices: Tensor, tail: Tensor) -> Tensor:
        dtype = compute_dtype(student)
        log_q = F.log_softmax(student.to(dtype) / temperature, dim=-1)
        indices = top_indices.long()
        log_q_top = log_q.gather(-1, indices)
        log_p_top = top_logprobs.detach().to(dtype)
        if indices.shape[-1] < student.shape[-1]:
            log_q_tail = torch.logsumexp(log_q.scatter(-1, indices, float("-inf")), dim=-1, keepdim=True)
            log_p_tail = tail.detach().to(dtype).clamp(min=TAIL_LOGPROB_FLOOR).unsqueeze(-1)
            log_q_top = torch.cat([log_q_top, log_q_tail], dim=-1)
            log_p_top = torch.cat([log_p_top, log_p_tail], dim=-1)
        return divergence_between(log_p_top, log_q_top, divergence, jsd_beta)

    return per_position


def topk_teacher_targets(teacher_logits: Tensor, *, k: int, temperature: float) -> dict[str, Tensor]:
    """The teacher's top-k log-probabilities at temperature T, their token indices and the tail's log-mass.

    k is cut to the vocabulary; the tail is floored at TAIL_LOGPROB_FLOOR, and is that floor when k
    covers the whole vocabulary.
    """
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    k = min(k, log_p.shape[-1])
    values, indices = log_p.topk(k, dim=-1)
    if k < log_p.shape[-1]:
        tail = torch.logsumexp(log_p.scatter(-1, indices, float("-inf")), dim=-1)
    else:
        tail = torch.full(log_p.shape[:-1], TAIL_LOGPROB_FLOOR, dtype=log_p.dtype, device=log_p.device)
    return {
        "topk_logprobs": values,
        "topk_indices": indices.int(),
        "tail_logprob": tail.clamp(min=TAIL_LOGPROB_FLOOR),
    }


@outside_autocast
def hard_target_loss(
    logits: Tensor, labels: Tensor, *, ignore_index: int = -100, chunk_size: int | None = None
) -> Tensor:
    """Mean cross-entropy over positions whose label != ignore_index (0 if none).

    CE = -log softmax(logits)[label]. logits [..., V], labels [...] (a causal LM's shift of labels
    against logits is the caller's job). Computed in at least float32. chunk_size: as in soft_target_loss.
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)} without the class axis"
        )
    if chunk_size is not None and logits.dim() == 3 and logits.shape[1] > chunk_size:
        per_position = cross_entropy_terms(ignore_index)
        return position_mean(per_position, logits, (labels,), labels != ignore_index, chunk_size)
    flat_logits = logits.to(compute_dtype(logits)).reshape(-1, logits.shape[-1])
    flat_labels = labels.reshape(-1)
    # A summed loss divided by the count gives 0 rather than NaN when every label is ignored.
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=ignore_index, reduction="sum")
    counted = (flat_labels != ignore_index).sum().clamp(min=1)
    return total / counted.to(total.dtype)


def cross_entropy_terms(ignore_index: int) -> PerPosition:
    """per_position(student, labels) -> -log softmax(student)[label] [...], 0 where the label is ignored."""

    def per_position(student: Tensor, targets: Tensor) -> Tensor:
        flat = student.to(compute_dtype(student)).reshape(-1, student.shape[-1])
        losses = F.cross_entropy(flat, targets.reshape(-1), ignore_index=ignore_index, reduction="none")
        return losses.view(targets.shape)

    return per_position
