"""Relational KD (Park et al. 2019) distance- and angle-wise losses, checked in float64."""

import math

import pytest
import torch

from engine.losses import rkd_angle_loss, rkd_distance_loss


def random_embeddings(batch: int, dim: int, *, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    # One far point makes some differences exceed the Huber threshold, so both branches are exercised.
    embeddings[0] *= 8
    return embeddings


def smooth_l1(x):
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def distance(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def reference_distance_loss(student, teacher):
    s, t = student.tolist(), teacher.tolist()
    pairs = [(i, j) for i in range(len(s)) for j in range(len(s)) if i != j]
    d_s = [distance(s[i], s[j]) for i, j in pairs]
    d_t = [distance(t[i], t[j]) for i, j in pairs]
    mu_s, mu_t = sum(d_s) / len(d_s), sum(d_t) / len(d_t)
    return sum(smooth_l1(a / mu_s - b / mu_t) for a, b in zip(d_s, d_t, strict=True)) / len(pairs)


def anchor_cosine(e, i, j, k):
    u = [a - b for a, b in zip(e[i], e[j], strict=True)]
    v = [a - b for a, b in zip(e[k], e[j], strict=True)]
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def reference_angle_loss(student, teacher):
    s, t = student.tolist(), teacher.tolist()
    n = len(s)
    triplets = [(i, j, k) for i in range(n) for j in range(n) for k in range(n) if len({i, j, k}) == 3]
    return sum(smooth_l1(anchor_cosine(s, *ijk) - anchor_cosine(t, *ijk)) for ijk in triplets) / len(triplets)


def test_distance_loss_matches_float64_reference_with_different_widths():
    student, teacher = random_embeddings(6, 4, seed=1), random_embeddings(6, 10, seed=2)
    expected = reference_distance_loss(student, teacher)
    assert torch.allclose(
        rkd_distance_loss(student, teacher), torch.tensor(expected, dtype=torch.float64), rtol=1e-10
    )


def test_angle_loss_matches_float64_reference_with_different_widths():
    student, teacher = random_embeddings(5, 4, seed=3), random_embeddings(5, 7, seed=4)
    expected = reference_angle_loss(student, teacher)
    assert torch.allclose(
        rkd_angle_loss(student, teacher), torch.tensor(expected, dtype=torch.float64), rtol=1e-10
    )


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_identical_embeddings_have_zero_loss(loss_fn):
    embeddings = random_embeddings(5, 6, seed=5)
    assert abs(loss_fn(embeddings, embeddings.clone()).item()) < 1e-12


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_geometry_is_invariant_to_scale_and_translation(loss_fn):
    student, teacher = random_embeddings(5, 6, seed=6), random_embeddings(5, 6, seed=7)
    assert abs(loss_fn(student * 3.5 + 2.0, student).item()) < 1e-12
    assert torch.allclose(loss_fn(student * 0.2 - 1.0, teacher), loss_fn(student, teacher), rtol=1e-10)


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_gradient_reaches_student_and_never_the_teacher(loss_fn):
    student = random_embeddings(4, 5, seed=8).requires_grad_()
    teacher = random_embeddings(4, 9, seed=9).requires_grad_()
    loss_fn(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


@pytest.mark.parametrize(("loss_fn", "too_small"), [(rkd_distance_loss, 1), (rkd_angle_loss, 2)])
def test_batches_too_small_for_a_relation_give_zero_with_a_usable_graph(loss_fn, too_small):
    student = random_embeddings(too_small, 4, seed=10).requires_grad_()
    loss = loss_fn(student, random_embeddings(too_small, 4, seed=11))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(student.grad == 0)


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_duplicate_embeddings_keep_gradients_finite(loss_fn):
    student = random_embeddings(4, 3, seed=12)
    student[1] = student[0]
    student.requires_grad_()
    loss = loss_fn(student, random_embeddings(4, 3, seed=13))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_mismatched_batches_raise_value_error(loss_fn):
    with pytest.raises(ValueError, match="batch"):
        loss_fn(random_embeddings(4, 3, seed=14), random_embeddings(5, 3, seed=15))
    with pytest.raises(ValueError, match="batch"):
        loss_fn(random_embeddings(4, 3, seed=16)[None], random_embeddings(4, 3, seed=17)[None])
