"""FitNets hidden-state loss, checked against its formula in float64."""

import math

import pytest
import torch

from engine.losses import hidden_state_loss


def random_states(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * 2 + 0.5


def layer_norm_list(vector):
    mean = sum(vector) / len(vector)
    variance = sum((x - mean) ** 2 for x in vector) / len(vector)
    return [(x - mean) / math.sqrt(variance + 1e-5) for x in vector]


def reference_hidden_state(student, teacher, kind, normalize, mask=None):
    """Mean over counted positions of the per-vector distance, with plain loops."""
    width = student.shape[-1]
    rows_s, rows_t = student.reshape(-1, width).tolist(), teacher.reshape(-1, width).tolist()
    counted = [True] * len(rows_s) if mask is None else mask.reshape(-1).tolist()
    values = []
    for s, t, keep in zip(rows_s, rows_t, counted, strict=True):
        if not keep:
            continue
        if normalize:
            s, t = layer_norm_list(s), layer_norm_list(t)
        if kind == "mse":
            values.append(sum((a - b) ** 2 for a, b in zip(s, t, strict=True)) / width)
        else:
            dot = sum(a * b for a, b in zip(s, t, strict=True))
            norms = math.sqrt(sum(a * a for a in s)) * math.sqrt(sum(b * b for b in t))
            values.append(1 - dot / norms)
    return sum(values) / len(values) if values else 0.0


@pytest.mark.parametrize("kind", ["mse", "cosine"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 8), (6, 8)])
def test_matches_float64_reference(kind, normalize, shape):
    student, teacher = random_states(*shape, seed=1), random_states(*shape, seed=2)
    loss = hidden_state_loss(student, teacher, kind=kind, normalize=normalize)
    expected = reference_hidden_state(student, teacher, kind, normalize)
    assert torch.allclose(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_matches_float64_reference_with_padding(kind):
    student, teacher = random_states(3, 6, 8, seed=3), random_states(3, 6, 8, seed=4)
    mask = torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]
    loss = hidden_state_loss(student, teacher, kind=kind, mask=mask)
    expected = reference_hidden_state(student, teacher, kind, True, mask)
    assert torch.allclose(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["mse", "cosine"])
@pytest.mark.parametrize("normalize", [True, False])
def test_identical_states_have_zero_loss(kind, normalize):
    states = random_states(2, 4, 8, seed=5)
    assert abs(hidden_state_loss(states, states.clone(), kind=kind, normalize=normalize).item()) < 1e-12


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_gradient_reaches_student_and_never_the_teacher(kind):
    student = random_states(2, 4, 8, seed=6).requires_grad_()
    teacher = random_states(2, 4, 8, seed=7).requires_grad_()
    hidden_state_loss(student, teacher, kind=kind).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_masked_positions_contribute_nothing(kind):
    student, teacher = random_states(2, 5, 8, seed=8), random_states(2, 5, 8, seed=9)
    mask = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    before = hidden_state_loss(student, teacher, kind=kind, mask=mask)
    student[~mask] = random_states(6, 8, seed=10) * 10
    teacher[~mask] = random_states(6, 8, seed=11) * 10
    assert torch.equal(before, hidden_state_loss(student, teacher, kind=kind, mask=mask))


def test_reduction_is_the_mean_over_counted_positions():
    student, teacher = random_states(3, 4, 8, seed=12), random_states(3, 4, 8, seed=13)
    mask = torch.arange(4)[None, :] < torch.tensor([4, 1, 2])[:, None]
    per_position = [
        hidden_state_loss(student[b, t][None], teacher[b, t][None]) for b, t in mask.nonzero().tolist()
    ]
    loss = hidden_state_loss(student, teacher, mask=mask)
    assert torch.allclose(loss, torch.stack(per_position).mean(), rtol=1e-12)
    doubled = hidden_state_loss(
        torch.cat([student, student]), torch.cat([teacher, teacher]), mask=mask.repeat(2, 1)
    )
    assert torch.allclose(loss, doubled, rtol=1e-12)


def test_normalization_ignores_the_teachers_scale_and_offset():
    student, teacher = random_states(2, 3, 16, seed=14), random_states(2, 3, 16, seed=15)
    plain = hidden_state_loss(student, teacher)
    assert torch.allclose(plain, hidden_state_loss(student, teacher * 7 - 3), rtol=1e-4)
    assert not torch.allclose(
        hidden_state_loss(student, teacher, normalize=False),
        hidden_state_loss(student, teacher * 7 - 3, normalize=False),
    )


def test_all_masked_batch_is_zero_with_a_usable_graph():
    student = random_states(2, 3, 8, seed=16).requires_grad_()
    loss = hidden_state_loss(
        student, random_states(2, 3, 8, seed=17), mask=torch.zeros(2, 3, dtype=torch.bool)
    )
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(student.grad == 0)


def test_different_widths_raise_value_error():
    with pytest.raises(ValueError, match="width"):
        hidden_state_loss(random_states(2, 3, 8, seed=18), random_states(2, 3, 16, seed=19))


def test_unknown_kind_and_bad_mask_raise_value_error():
    student, teacher = random_states(2, 3, 8, seed=20), random_states(2, 3, 8, seed=21)
    with pytest.raises(ValueError, match="kind"):
        hidden_state_loss(student, teacher, kind="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask"):
        hidden_state_loss(student, teacher, mask=torch.ones(2, 4, dtype=torch.bool))
