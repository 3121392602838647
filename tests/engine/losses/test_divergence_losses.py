"""Soft-target divergences and hard-label cross-entropy, checked against their formulas in float64."""

import math

import pytest
import torch

from engine.losses import hard_target_loss, soft_target_loss

DIVERGENCES = ["forward_kl", "reverse_kl", "jsd"]


def random_logits(*shape: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale


def uneven_lengths_mask(lengths: list[int], total: int) -> torch.Tensor:
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


def reference_soft_target(student, teacher, temperature, divergence, beta=0.5, mask=None):
    """T^2 * mean over counted positions of D, written with plain loops over positions and vocabulary."""
    vocab = student.shape[-1]
    flat_student, flat_teacher = student.reshape(-1, vocab).tolist(), teacher.reshape(-1, vocab).tolist()
    counted = [True] * len(flat_student) if mask is None else mask.reshape(-1).tolist()
    total, count = 0.0, 0
    for s_row, t_row, keep in zip(flat_student, flat_teacher, counted, strict=True):
        if not keep:
            continue
        p_s = softmax_list([x / temperature for x in s_row])
        p_t = softmax_list([x / temperature for x in t_row])
        if divergence == "forward_kl":
            value = kl_list(p_t, p_s)
        elif divergence == "reverse_kl":
            value = kl_list(p_s, p_t)
        else:
            m = [beta * a + (1 - beta) * b for a, b in zip(p_t, p_s, strict=True)]
            value = beta * kl_list(p_t, m) + (1 - beta) * kl_list(p_s, m)
        total += value
        count += 1
    return temperature**2 * total / count if count else 0.0


def softmax_list(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def kl_list(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_classification_loss_matches_float64_reference(divergence, temperature):
    student, teacher = random_logits(6, 7, seed=1), random_logits(6, 7, seed=2)
    loss = soft_target_loss(student, teacher, temperature=temperature, divergence=divergence, jsd_beta=0.3)
    expected = reference_soft_target(student, teacher, temperature, divergence, beta=0.3)
    assert torch.allclose(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_causal_lm_loss_with_padding_matches_float64_reference(divergence):
    student, teacher = random_logits(3, 5, 11, seed=3), random_logits(3, 5, 11, seed=4)
    mask = uneven_lengths_mask([5, 2, 4], total=5)
    loss = soft_target_loss(student, teacher, temperature=2.0, divergence=divergence, jsd_beta=0.7, mask=mask)
    expected = reference_soft_target(student, teacher, 2.0, divergence, beta=0.7, mask=mask)
    assert torch.allclose(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_identical_distributions_have_zero_divergence(divergence, dtype):
    logits = random_logits(4, 6, 9, seed=5).to(dtype)
    loss = soft_target_loss(logits, logits.clone(), temperature=3.0, divergence=divergence)
    assert abs(loss.item()) < (1e-12 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_gradient_reaches_student_and_never_the_teacher(divergence):
    student = random_logits(4, 3, 8, seed=6).requires_grad_()
    teacher = random_logits(4, 3, 8, seed=7).requires_grad_()
    soft_target_loss(student, teacher, temperature=2.0, divergence=divergence).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_masked_positions_contribute_nothing(divergence):
    student, teacher = random_logits(3, 6, 10, seed=8), random_logits(3, 6, 10, seed=9)
    mask = uneven_lengths_mask([6, 3, 1], total=6)
    before = soft_target_loss(student, teacher, temperature=2.0, divergence=divergence, mask=mask)
    student_changed, teacher_changed = student.clone(), teacher.clone()
    student_changed[~mask] = random_logits(int((~mask).sum()), 10, seed=10) * 5
    teacher_changed[~mask] = random_logits(int((~mask).sum()), 10, seed=11) * 5
    after = soft_target_loss(
        student_changed, teacher_changed, temperature=2.0, divergence=divergence, mask=mask
    )
    assert torch.equal(before, after)


def test_masked_positions_receive_no_gradient():
    student = random_logits(2, 4, 5, seed=12).requires_grad_()
    mask = uneven_lengths_mask([4, 1], total=4)
    soft_target_loss(student, random_logits(2, 4, 5, seed=13), temperature=1.0, mask=mask).backward()
    assert torch.all(student.grad[~mask] == 0)
    assert torch.all(student.grad[mask].abs().sum(dim=-1) > 0)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_classification_reduction_is_per_sample(divergence):
    student, teacher = random_logits(5, 7, seed=14), random_logits(5, 7, seed=15)
    single = soft_target_loss(student, teacher, temperature=2.0, divergence=divergence)
    doubled = soft_target_loss(
        torch.cat([student, student]), torch.cat([teacher, teacher]), temperature=2.0, divergence=divergence
    )
    assert torch.allclose(single, doubled, rtol=1e-12)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_causal_lm_reduction_is_the_mean_over_counted_tokens(divergence):
    student, teacher = random_logits(3, 5, 6, seed=16), random_logits(3, 5, 6, seed=17)
    mask = uneven_lengths_mask([5, 1, 3], total=5)
    loss = soft_target_loss(student, teacher, temperature=1.5, divergence=divergence, mask=mask)
    per_token = [
        soft_target_loss(student[b, t][None], teacher[b, t][None], temperature=1.5, divergence=divergence)
        for b, t in mask.nonzero().tolist()
    ]
    assert len(per_token) == 9
    assert torch.allclose(loss, torch.stack(per_token).mean(), rtol=1e-12)


def test_forward_kl_is_scaled_by_temperature_squared():
    student, teacher = random_logits(4, 9, seed=18), random_logits(4, 9, seed=19)
    temperature = 4.0
    log_p_s = torch.log_softmax(student / temperature, dim=-1)
    p_t = torch.softmax(teacher / temperature, dim=-1)
    unscaled = (p_t * (p_t.log() - log_p_s)).sum(dim=-1).mean()
    loss = soft_target_loss(student, teacher, temperature=temperature)
    assert torch.allclose(loss, temperature**2 * unscaled, rtol=1e-12)


def test_jsd_with_half_beta_is_symmetric():
    a, b = random_logits(4, 3, 8, seed=20), random_logits(4, 3, 8, seed=21)
    ab = soft_target_loss(a, b, temperature=2.0, divergence="jsd", jsd_beta=0.5)
    ba = soft_target_loss(b, a, temperature=2.0, divergence="jsd", jsd_beta=0.5)
    assert torch.allclose(ab, ba, rtol=1e-12)


def test_jsd_is_bounded_by_log_two_times_temperature_squared():
    # Nearly one-hot distributions on different classes approach the bound.
    student = torch.tensor([[200.0, 0.0, 0.0], [0.0, 0.0, 200.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0, 200.0, 0.0], [200.0, 0.0, 0.0]], dtype=torch.float64)
    temperature = 2.0
    bound = math.log(2) * temperature**2
    extreme = soft_target_loss(student, teacher, temperature=temperature, divergence="jsd").item()
    assert extreme <= bound + 1e-12
    assert extreme == pytest.approx(bound, rel=1e-6)
    for seed in range(5):
        loss = soft_target_loss(
            random_logits(8, 5, seed=100 + seed, scale=20.0),
            random_logits(8, 5, seed=200 + seed, scale=20.0),
            temperature=temperature,
            divergence="jsd",
        )
        assert 0 <= loss.item() <= bound


def test_reverse_kl_differs_from_forward_kl():
    student, teacher = random_logits(4, 6, seed=22), random_logits(4, 6, seed=23)
    forward = soft_target_loss(student, teacher, temperature=1.0, divergence="forward_kl")
    reverse = soft_target_loss(student, teacher, temperature=1.0, divergence="reverse_kl")
    assert not torch.allclose(forward, reverse)
    swapped = soft_target_loss(teacher, student, temperature=1.0, divergence="forward_kl")
    assert torch.allclose(reverse, swapped, rtol=1e-12)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_all_masked_batch_is_zero_with_a_usable_graph(divergence):
    student = random_logits(2, 3, 4, seed=24).requires_grad_()
    mask = torch.zeros(2, 3, dtype=torch.bool)
    loss = soft_target_loss(
        student, random_logits(2, 3, 4, seed=25), temperature=2.0, divergence=divergence, mask=mask
    )
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(student.grad == 0)


def test_half_precision_inputs_are_computed_in_float32():
    student = random_logits(3, 4, 50, seed=26).to(torch.bfloat16)
    teacher = random_logits(3, 4, 50, seed=27).to(torch.bfloat16)
    loss = soft_target_loss(student, teacher, temperature=2.0)
    assert loss.dtype == torch.float32
    expected = reference_soft_target(student.double(), teacher.double(), 2.0, "forward_kl")
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_teacher_with_impossible_tokens_gives_a_finite_loss():
    student = random_logits(2, 5, seed=28).requires_grad_()
    teacher = random_logits(2, 5, seed=29)
    teacher[:, 3] = float("-inf")
    loss = soft_target_loss(student, teacher, temperature=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    kept = [0, 1, 2, 4]
    p_t = torch.softmax(teacher[:, kept], dim=-1)
    log_p_s = torch.log_softmax(student.detach(), dim=-1)[:, kept]
    assert torch.allclose(loss, (p_t * (p_t.log() - log_p_s)).sum(-1).mean(), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": 1.0, "divergence": "tvd"}, "divergence"),
        ({"temperature": 1.0, "divergence": "jsd", "jsd_beta": 1.0}, "jsd_beta"),
        ({"temperature": 1.0, "divergence": "jsd", "jsd_beta": 0.0}, "jsd_beta"),
        ({"temperature": 1.0, "mask": torch.ones(2, 4, dtype=torch.bool)}, "mask"),
        ({"temperature": 1.0, "mask": torch.ones(2, 3)}, "mask"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        soft_target_loss(random_logits(2, 3, 5, seed=30), random_logits(2, 3, 5, seed=31), **kwargs)


def test_vocabulary_mismatch_raises_value_error_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 6\)"):
        soft_target_loss(random_logits(2, 5, seed=32), random_logits(2, 6, seed=33), temperature=1.0)


def test_hard_target_loss_matches_float64_reference_and_skips_ignored_labels():
    logits = random_logits(3, 4, 6, seed=34)
    labels = torch.tensor([[1, 5, -100, 0], [2, -100, -100, -100], [4, 4, 3, -100]])
    loss = hard_target_loss(logits, labels)
    terms = [
        -math.log(softmax_list(logits[b, t].tolist())[labels[b, t]])
        for b in range(3)
        for t in range(4)
        if labels[b, t] != -100
    ]
    assert torch.allclose(loss, torch.tensor(sum(terms) / len(terms), dtype=torch.float64), rtol=1e-10)


def test_hard_target_loss_honours_a_custom_ignore_index():
    logits = random_logits(4, 3, seed=35)
    labels = torch.tensor([0, 2, -1, 1])
    loss = hard_target_loss(logits, labels, ignore_index=-1)
    kept = [0, 1, 3]
    assert torch.allclose(loss, hard_target_loss(logits[kept], labels[kept]), rtol=1e-12)


def test_hard_target_loss_with_every_label_ignored_is_zero_with_a_usable_graph():
    logits = random_logits(2, 3, 4, seed=36).requires_grad_()
    loss = hard_target_loss(logits, torch.full((2, 3), -100))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_hard_target_loss_rejects_labels_of_the_wrong_shape():
    with pytest.raises(ValueError, match="labels"):
        hard_target_loss(random_logits(2, 3, 4, seed=37), torch.zeros(2, 4, dtype=torch.long))
