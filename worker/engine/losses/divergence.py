"""Response-based losses on output logits: soft targets (Hinton et al. 2015) and hard labels."""

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from worker.engine.losses.distributions import generalized_jsd, kl_divergence
from worker.engine.losses.masking import check_mask, compute_dtype, masked_mean, outside_autocast

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")


@outside_autocast
def soft_target_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float,
    divergence: Divergence = "forward_kl",
    jsd_beta: float = 0.5,
    mask: Tensor | None = None,
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
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ in shape"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if divergence == "jsd" and not 0 < jsd_beta < 1:
        raise ValueError(f"jsd_beta must be in (0, 1), got {jsd_beta}")
    check_mask(mask, student_logits.shape[:-1])

    dtype = compute_dtype(student_logits)
    log_p_student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().to(dtype) / temperature, dim=-1)
    if divergence == "forward_kl":
        per_position = kl_divergence(log_p_teacher, log_p_student)
    elif divergence == "reverse_kl":
        per_position = kl_divergence(log_p_student, log_p_teacher)
    else:
        per_position = generalized_jsd(log_p_teacher, log_p_student, beta=jsd_beta)
    return temperature**2 * masked_mean(per_position, mask)


@outside_autocast
def hard_target_loss(logits: Tensor, labels: Tensor, *, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy over positions whose label != ignore_index (0 if none).

    CE = -log softmax(logits)[label]. logits [..., V], labels [...] (a causal LM's shift of labels
    against logits is the caller's job). Computed in at least float32.
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)} without the class axis"
        )
    flat_logits = logits.to(compute_dtype(logits)).reshape(-1, logits.shape[-1])
    flat_labels = labels.reshape(-1)
    # A summed loss divided by the count gives 0 rather than NaN when every label is ignored.
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=ignore_index, reduction="sum")
    counted = (flat_labels != ignore_index).sum().clamp(min=1)
    return total / counted.to(total.dtype)
