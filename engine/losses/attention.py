"""Attention-based losses: TinyBERT attention maps and MiniLM self-attention relations."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.losses.distributions import kl_divergence
from engine.losses.masking import check_mask, compute_dtype, masked_mean, outside_autocast


@outside_autocast
def attention_map_loss(student_attn: Tensor, teacher_attn: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """TinyBERT (Jiao et al. 2020) attention transfer: MSE between attention probability maps.

    maps [B, heads, T, T] with the same head count (ValueError naming both head counts otherwise).
    mask: bool [B, T] of real tokens; element (b, h, i, j) counts when tokens i and j are both real, so
    query rows and key columns at padding contribute nothing.
    loss = sum over counted (b, h, i, j) of (A_s - A_t)^2 / number of counted elements.
    Teacher side is detached.
    """
    if student_attn.dim() != 4 or teacher_attn.dim() != 4:
        raise ValueError(
            f"attention maps must be [batch, heads, T, T], got {tuple(student_attn.shape)} "
            f"and {tuple(teacher_attn.shape)}"
        )
    if student_attn.shape[1] != teacher_attn.shape[1]:
        raise ValueError(
            f"student has {student_attn.shape[1]} attention heads and teacher has {teacher_attn.shape[1]}; "
            "attention maps can only be matched head to head"
        )
    if student_attn.shape != teacher_attn.shape:
        raise ValueError(
            f"student attention {tuple(student_attn.shape)} and teacher attention "
            f"{tuple(teacher_attn.shape)} differ in shape"
        )
    batch, heads, queries, keys = student_attn.shape
    check_mask(mask, torch.Size((batch, queries)))

    dtype = compute_dtype(student_attn)
    squared_error = (student_attn.to(dtype) - teacher_attn.detach().to(dtype)).pow(2)
    if mask is None:
        return squared_error.mean()
    pair_mask = (mask[:, :, None] & mask[:, None, :])[:, None, :, :].expand(batch, heads, queries, keys)
    return masked_mean(squared_error, pair_mask)


@outside_autocast
def self_attention_relation_loss(
    student_states: Tensor,
    teacher_states: Tensor,
    *,
    num_heads: int,
    mask: Tensor | None = None,
) -> Tensor:
    """MiniLM / MiniLMv2 (Wang et al. 2020, 2021) self-attention relation transfer.

    Split [B, T, H] states (queries, keys or values of a layer) into num_heads relation heads of size
    d_r = H / num_heads (H may differ between student and teacher; each must be divisible by num_heads,
    ValueError otherwise). Relation R = softmax(X X^T / sqrt(d_r)) over keys, padding keys masked out;
    loss = mean over heads and counted query positions of KL(R_teacher || R_student).
    mask: bool [B, T] of real tokens, None = all count. Teacher side is detached.
    """
    if student_states.dim() != 3 or teacher_states.dim() != 3:
        raise ValueError(
            f"states must be [batch, T, hidden], got {tuple(student_states.shape)} "
            f"and {tuple(teacher_states.shape)}"
        )
    if student_states.shape[:2] != teacher_states.shape[:2]:
        raise ValueError(
            f"student states {tuple(student_states.shape)} and teacher states "
            f"{tuple(teacher_states.shape)} differ in batch or sequence length"
        )
    if num_heads < 1:
        raise ValueError(f"num_heads must be >= 1, got {num_heads}")
    for side, states in (("student", student_states), ("teacher", teacher_states)):
        if states.shape[-1] % num_heads:
            raise ValueError(
                f"{side} hidden size {states.shape[-1]} is not divisible by {num_heads} relation heads"
            )
    check_mask(mask, student_states.shape[:2])

    dtype = compute_dtype(student_states)
    log_r_student = _relation_log_probs(student_states.to(dtype), num_heads, mask)
    log_r_teacher = _relation_log_probs(teacher_states.detach().to(dtype), num_heads, mask)
    per_query = kl_divergence(log_r_teacher, log_r_student)  # [B, heads, T]
    if mask is None:
        return per_query.mean()
    return masked_mean(per_query, mask[:, None, :].expand_as(per_query))


def _relation_log_probs(states: Tensor, num_heads: int, mask: Tensor | None) -> Tensor:
    """log softmax(X X^T / sqrt(d_r)) per relation head: [B, T, H] -> [B, heads, T, T]."""
    batch, length, hidden = states.shape
    head_size = hidden // num_heads
    per_head = states.view(batch, length, num_heads, head_size).transpose(1, 2)
    scores = per_head @ per_head.transpose(-1, -2) / math.sqrt(head_size)
    if mask is not None:
        # A finite minimum rather than -inf, so a row with no real key stays finite (it is not counted).
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)
