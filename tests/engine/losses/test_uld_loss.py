"""The Universal Logit Distillation loss against its formula written out directly, in float64."""

import pytest
import torch

from engine.losses import uld_loss
from engine.losses.uld import shared_tokens, sorted_l1


def logits(rows: int, vocab: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=generator, dtype=torch.float64) * 3


def direct_sorted_l1(p: list[float], q: list[float]) -> float:
    """Sort both descending, pad the shorter with zeros, sum the absolute differences: plain Python."""
    a, b = sorted(p, reverse=True), sorted(q, reverse=True)
    width = max(len(a), len(b))
    a, b = a + [0.0] * (width - len(a)), b + [0.0] * (width - len(b))
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


def direct_uld(
    student: torch.Tensor,
    teacher: torch.Tensor,
    T: float,
    weight: float,
    pairs: list[tuple[int, int]] | None,
) -> float:
    """The mean over rows of the (hybrid when `pairs` are given) ULD loss, row by row, token by token."""
    total = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        p_s = torch.softmax(s_row / T, dim=0).tolist()
        p_t = torch.softmax(t_row / T, dim=0).tolist()
        if pairs is None:
            total += weight * direct_sorted_l1(p_s, p_t)
            continue
        exact = sum(abs(p_t[t] - p_s[s]) for t, s in pairs)
        shared_t, shared_s = {t for t, _ in pairs}, {s for _, s in pairs}
        rest_t = [v for i, v in enumerate(p_t) if i not in shared_t]
        rest_s = [v for i, v in enumerate(p_s) if i not in shared_s]
        total += exact + weight * direct_sorted_l1(rest_s, rest_t)
    return total / len(student)


@pytest.mark.parametrize(("vocab_s", "vocab_t", "T", "weight"), [(11, 17, 1.0, 1.0), (19, 7, 2.5, 0.3)])
def test_the_sorted_loss_is_the_l1_between_sorted_zero_padded_probabilities(vocab_s, vocab_t, T, weight):
    student, teacher = logits(5, vocab_s, seed=1), logits(5, vocab_t, seed=2)
    got = uld_loss(student, teacher, temperature=T, sorted_weight=weight)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(direct_uld(student, teacher, T, weight, None), rel=1e-12, abs=1e-14)


def test_the_hybrid_matches_shared_tokens_one_to_one_and_sorts_the_rest():
    teacher_vocab = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "x": 5, "y": 6}
    student_vocab = {"c": 0, "a": 1, "z": 2, "e": 3, "q": 4}
    shared = shared_tokens(teacher_vocab, student_vocab, teacher_width=7, student_width=5)
    pairs = list(zip(shared.teacher_ids.tolist(), shared.student_ids.tolist(), strict=True))
    assert pairs == [(0, 1), (2, 0), (4, 3)]
    student, teacher = logits(4, 5, seed=3), logits(4, 7, seed=4)
    got = uld_loss(student, teacher, temperature=1.5, sorted_weight=0.7, shared=shared)
    assert got.item() == pytest.approx(direct_uld(student, teacher, 1.5, 0.7, pairs), rel=1e-12)


def test_with_one_vocabulary_the_hybrid_is_the_l1_distance_and_never_below_the_sorted_loss():
    vocab = {f"t{i}": i for i in range(9)}
    shared = shared_tokens(vocab, vocab, teacher_width=9, student_width=9)
    student, teacher = logits(6, 9, seed=5), logits(6, 9, seed=6)
    hybrid = uld_loss(student, teacher, shared=shared)
    l1 = (torch.softmax(student, -1) - torch.softmax(teacher, -1)).abs().sum(-1).mean()
    assert hybrid.item() == pytest.approx(l1.item(), rel=1e-12)
    # Sorting both sides pairs ranks optimally, so matching tokens one to one can only cost more.
    assert uld_loss(student, teacher).item() <= hybrid.item() + 1e-12


def test_the_loss_is_zero_for_the_same_distribution_up_to_a_permutation_of_tokens():
    teacher = logits(3, 8, seed=7)
    permuted = teacher[:, torch.randperm(8, generator=torch.Generator().manual_seed(0))]
    assert uld_loss(permuted, teacher).item() == pytest.approx(0.0, abs=1e-15)
    # Padding: a student with a larger vocabulary of near-zero extra tokens is nearly as close.
    padded = torch.cat([permuted, torch.full((3, 4), -60.0, dtype=torch.float64)], dim=-1)
    assert uld_loss(padded, teacher).item() == pytest.approx(0.0, abs=1e-12)


def test_gradients_reach_the_student_only_and_match_finite_differences():
    student = logits(3, 6, seed=8).requires_grad_(True)
    teacher = logits(3, 9, seed=9).requires_grad_(True)
    uld_loss(student, teacher, temperature=2.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    vocab = {f"t{i}": i for i in range(6)}
    shared = shared_tokens(vocab, {**vocab, "extra": 6}, teacher_width=6, student_width=7)
    assert torch.autograd.gradcheck(
        lambda s: uld_loss(s, logits(3, 6, seed=10), shared=shared, sorted_weight=0.5),
        (logits(3, 7, seed=11).requires_grad_(True),),
    )


def test_no_aligned_positions_give_zero_with_the_graph_intact():
    student = logits(0, 5, seed=0).requires_grad_(True)
    loss = uld_loss(student, logits(0, 8, seed=0))
    loss.backward()
    assert loss.item() == 0.0 and student.grad is not None


def test_sorted_l1_of_a_vocabulary_with_nothing_left_is_the_other_side_s_mass():
    p, q = torch.empty(2, 0, dtype=torch.float64), torch.tensor([[0.2, 0.1], [0.0, 0.3]], dtype=torch.float64)
    assert sorted_l1(p, q).tolist() == pytest.approx([0.3, 0.3])
