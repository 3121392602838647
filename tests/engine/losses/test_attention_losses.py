"""TinyBERT attention-map and MiniLM self-attention relation losses, checked in float64."""

import math

import pytest
import torch

from engine.losses import attention_map_loss, self_attention_relation_loss


def random_tensor(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def random_attention(batch, heads, length, *, seed):
    return torch.softmax(random_tensor(batch, heads, length, length, seed=seed) * 2, dim=-1)


def padding_mask(lengths, total):
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


def reference_attention_map(student, teacher, mask):
    """Mean of squared differences over (b, h, i, j) with both tokens i and j real, with plain loops."""
    batch, heads, length, _ = student.shape
    total, count = 0.0, 0
    for b in range(batch):
        for h in range(heads):
            for i in range(length):
                for j in range(length):
                    if mask[b, i] and mask[b, j]:
                        total += (student[b, h, i, j].item() - teacher[b, h, i, j].item()) ** 2
                        count += 1
    return total / count


def reference_relation(student, teacher, num_heads, mask):
    """Mean over heads and real queries of KL(R_t || R_s), relations softmaxed over the real keys only."""
    batch, length, _ = student.shape
    total, count = 0.0, 0
    for b in range(batch):
        keys = [j for j in range(length) if mask[b, j]]
        for h in range(num_heads):
            r_s = relation_rows(student[b], h, num_heads, keys)
            r_t = relation_rows(teacher[b], h, num_heads, keys)
            for i in keys:
                total += sum(t * math.log(t / s) for t, s in zip(r_t[i], r_s[i], strict=True))
                count += 1
    return total / count


def relation_rows(states, head, num_heads, keys):
    size = states.shape[-1] // num_heads
    vectors = states[:, head * size : (head + 1) * size].tolist()
    rows = {}
    for i in keys:
        scores = [
            sum(a * b for a, b in zip(vectors[i], vectors[j], strict=True)) / math.sqrt(size) for j in keys
        ]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        rows[i] = [e / sum(exps) for e in exps]
    return rows


def test_attention_map_loss_matches_float64_reference_with_padding():
    student, teacher = random_attention(3, 2, 5, seed=1), random_attention(3, 2, 5, seed=2)
    mask = padding_mask([5, 3, 1], 5)
    loss = attention_map_loss(student, teacher, mask=mask)
    expected = reference_attention_map(student, teacher, mask)
    assert torch.allclose(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-14)


def test_attention_map_loss_without_mask_is_the_plain_mean_squared_error():
    student, teacher = random_attention(2, 3, 4, seed=3), random_attention(2, 3, 4, seed=4)
    expected = reference_attention_map(student, teacher, torch.ones(2, 4, dtype=torch.bool))
    assert torch.allclose(attention_map_loss(student, teacher), torch.tensor(expected, dtype=torch.float64))


def test_identical_attention_maps_have_zero_loss():
    maps = random_attention(2, 4, 6, seed=5)
    assert attention_map_loss(maps, maps.clone(), mask=padding_mask([6, 3], 6)).item() == 0.0


def test_attention_map_gradient_reaches_student_and_never_the_teacher():
    student = random_attention(2, 2, 4, seed=6).requires_grad_()
    teacher = random_attention(2, 2, 4, seed=7).requires_grad_()
    attention_map_loss(student, teacher, mask=padding_mask([4, 2], 4)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_attention_map_padding_rows_and_columns_contribute_nothing():
    student, teacher = random_attention(2, 2, 5, seed=8), random_attention(2, 2, 5, seed=9)
    mask = padding_mask([5, 3], 5)
    before = attention_map_loss(student, teacher, mask=mask)
    student[1, :, 3:, :] = 7.0
    teacher[1, :, :, 3:] = -7.0
    assert torch.equal(before, attention_map_loss(student, teacher, mask=mask))


def test_attention_map_different_head_counts_raise_value_error_naming_both():
    with pytest.raises(ValueError, match=r"student has 4 attention heads and teacher has 12"):
        attention_map_loss(random_attention(1, 4, 3, seed=10), random_attention(1, 12, 3, seed=11))


def test_attention_map_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="shape"):
        attention_map_loss(random_attention(1, 2, 3, seed=12), random_attention(1, 2, 4, seed=13))
    with pytest.raises(ValueError, match="heads"):
        attention_map_loss(random_tensor(2, 3, 3, seed=14), random_tensor(2, 3, 3, seed=15))
    with pytest.raises(ValueError, match="mask"):
        attention_map_loss(
            random_attention(1, 2, 3, seed=16),
            random_attention(1, 2, 3, seed=17),
            mask=torch.ones(1, 4, dtype=torch.bool),
        )


def test_relation_loss_matches_float64_reference_with_different_widths_and_padding():
    student, teacher = random_tensor(3, 5, 8, seed=18), random_tensor(3, 5, 12, seed=19)
    mask = padding_mask([5, 2, 4], 5)
    loss = self_attention_relation_loss(student, teacher, num_heads=4, mask=mask)
    expected = reference_relation(student, teacher, 4, mask)
    assert torch.allclose(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_relation_loss_without_mask_counts_every_position():
    student, teacher = random_tensor(2, 4, 6, seed=20), random_tensor(2, 4, 9, seed=21)
    loss = self_attention_relation_loss(student, teacher, num_heads=3)
    expected = reference_relation(student, teacher, 3, torch.ones(2, 4, dtype=torch.bool))
    assert torch.allclose(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_identical_states_have_zero_relation_loss():
    states = random_tensor(2, 5, 8, seed=22)
    loss = self_attention_relation_loss(states, states.clone(), num_heads=2, mask=padding_mask([5, 3], 5))
    assert abs(loss.item()) < 1e-12


def test_relation_gradient_reaches_student_and_never_the_teacher():
    student = random_tensor(2, 4, 8, seed=23).requires_grad_()
    teacher = random_tensor(2, 4, 16, seed=24).requires_grad_()
    self_attention_relation_loss(student, teacher, num_heads=4, mask=padding_mask([4, 2], 4)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_relation_padding_positions_contribute_nothing():
    student, teacher = random_tensor(2, 5, 8, seed=25), random_tensor(2, 5, 8, seed=26)
    mask = padding_mask([5, 2], 5)
    before = self_attention_relation_loss(student, teacher, num_heads=2, mask=mask)
    student[1, 2:] = random_tensor(3, 8, seed=27) * 10
    teacher[1, 2:] = random_tensor(3, 8, seed=28) * 10
    assert torch.allclose(
        before, self_attention_relation_loss(student, teacher, num_heads=2, mask=mask), rtol=1e-14, atol=0
    )


def test_relation_loss_of_a_sample_with_no_real_token_is_finite_and_ignored():
    student = random_tensor(2, 3, 4, seed=29).requires_grad_()
    teacher = random_tensor(2, 3, 4, seed=30)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    loss = self_attention_relation_loss(student, teacher, num_heads=2, mask=mask)
    loss.backward()
    assert torch.isfinite(student.grad).all()
    alone = self_attention_relation_loss(student[:1], teacher[:1], num_heads=2, mask=mask[:1])
    assert torch.allclose(loss, alone, rtol=1e-14)


def test_relation_widths_not_divisible_by_heads_raise_value_error():
    with pytest.raises(ValueError, match="teacher hidden size 10 is not divisible by 4"):
        self_attention_relation_loss(
            random_tensor(1, 3, 8, seed=31), random_tensor(1, 3, 10, seed=32), num_heads=4
        )
    with pytest.raises(ValueError, match="student hidden size 6 is not divisible by 4"):
        self_attention_relation_loss(
            random_tensor(1, 3, 6, seed=33), random_tensor(1, 3, 8, seed=34), num_heads=4
        )


def test_relation_mismatched_lengths_raise_value_error():
    with pytest.raises(ValueError, match="sequence length"):
        self_attention_relation_loss(
            random_tensor(1, 3, 8, seed=35), random_tensor(1, 4, 8, seed=36), num_heads=2
        )
