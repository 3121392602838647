"""The top-k soft-target loss against the full loss, in float64, on a tiny language model's logits."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from engine.losses import soft_target_loss, topk_soft_target_loss, topk_teacher_targets

VOCAB = 40
DIVERGENCES = ["forward_kl", "reverse_kl", "jsd"]


def lm_logits(seed: int) -> torch.Tensor:
    """Next-token logits [2, 7, VOCAB] of a randomly initialised tiny GPT-2, in float64."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=16)
    model = GPT2LMHeadModel(config).double().eval()
    input_ids = torch.randint(0, VOCAB, (2, 7))
    with torch.no_grad():
        return model(input_ids=input_ids).logits * 8  # sharper than at init, like a trained model


def coarsened_divergence(
    teacher: torch.Tensor, student: torch.Tensor, k: int, divergence: str, T: float
) -> torch.Tensor:
    """The divergence between both distributions merged to the teacher's top k tokens plus the rest."""
    p, q = torch.softmax(teacher / T, dim=-1), torch.softmax(student / T, dim=-1)
    top = p.topk(k, dim=-1).indices
    p_top, q_top = p.gather(-1, top), q.gather(-1, top)
    p_buckets = torch.cat([p_top, 1 - p_top.sum(-1, keepdim=True)], dim=-1)
    q_buckets = torch.cat([q_top, 1 - q_top.sum(-1, keepdim=True)], dim=-1)

    def kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * (a.log() - b.log())).sum(-1)

    if divergence == "forward_kl":
        value = kl(p_buckets, q_buckets)
    elif divergence == "reverse_kl":
        value = kl(q_buckets, p_buckets)
    else:
        m = 0.5 * p_buckets + 0.5 * q_buckets
        value = 0.5 * kl(p_buckets, m) + 0.5 * kl(q_buckets, m)
    return T**2 * value.mean()


def topk_loss(
    student: torch.Tensor, teacher: torch.Tensor, k: int, divergence: str, T: float
) -> torch.Tensor:
    targets = topk_teacher_targets(teacher, k=k, temperature=T)
    # The targets come back in float32, as the teacher pass stores them; recompute them in float64.
    log_p = torch.log_softmax(teacher / T, dim=-1)
    values = log_p.gather(-1, targets["topk_indices"].long())
    rest = log_p.scatter(-1, targets["topk_indices"].long(), -math.inf)
    tail = torch.logsumexp(rest, dim=-1) if k < VOCAB else targets["tail_logprob"].double()
    return topk_soft_target_loss(
        student, values, targets["topk_indices"], tail, temperature=T, divergence=divergence, jsd_beta=0.5
    )


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_with_k_covering_the_vocabulary_it_is_the_full_loss(divergence):
    teacher, student = lm_logits(0), lm_logits(1)
    full = soft_target_loss(student, teacher, temperature=2.0, divergence=divergence)
    got = topk_loss(student, teacher, VOCAB, divergence, 2.0)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(full.item(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("k", [1, 5, 20])
def test_with_fewer_tokens_it_is_the_divergence_of_the_merged_distributions(divergence, k):
    teacher, student = lm_logits(0), lm_logits(1)
    expected = coarsened_divergence(teacher, student, k, divergence, 2.0)
    assert topk_loss(student, teacher, k, divergence, 2.0).item() == pytest.approx(expected.item(), rel=1e-9)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_it_never_exceeds_the_full_forward_kl(k):
    teacher, student = lm_logits(0), lm_logits(1)
    full = soft_target_loss(student, teacher, temperature=1.0)
    assert topk_loss(student, teacher, k, "forward_kl", 1.0).item() <= full.item() + 1e-12


def test_masked_positions_count_for_nothing_and_gradients_reach_the_student_only():
    teacher, student = lm_logits(0), lm_logits(1).requires_grad_(True)
    targets = topk_teacher_targets(teacher, k=5, temperature=1.0)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    loss = topk_soft_target_loss(
        student,
        targets["topk_logprobs"],
        targets["topk_indices"],
        targets["tail_logprob"],
        temperature=1.0,
        mask=mask,
    )
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad[1, 4:].abs().sum() == 0 and student.grad[0].abs().sum() > 0
