"""Divergences between categorical distributions given as log-probabilities over the last axis."""

import math

import torch
from torch import Tensor


def kl_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) = sum_v p_v (log p_v - log q_v) over the last axis, with 0 log 0 taken as 0."""
    p = log_p.exp()
    # Zeroing the difference where p == 0 keeps -inf - (-inf) from turning into NaN in value or gradient.
    difference = torch.where(p > 0, log_p - log_q, torch.zeros((), dtype=log_p.dtype, device=log_p.device))
    return (p * difference).sum(dim=-1)


def generalized_jsd(log_p: Tensor, log_q: Tensor, *, beta: float) -> Tensor:
    """beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q (GKD, Agarwal et al. 2024)."""
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1.0 - beta)]), dim=0)
    return beta * kl_divergence(log_p, log_m) + (1.0 - beta) * kl_divergence(log_q, log_m)
