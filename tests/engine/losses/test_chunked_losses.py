"""Token-level losses computed in chunks over the sequence equal whole-sequence ones, value and gradient."""

import pytest
import torch

from engine.losses import hard_target_loss, soft_target_loss, topk_soft_target_loss, topk_teacher_targets
from engine.losses.chunking import chunk_length

DIVERGENCES = ["forward_kl", "reverse_kl", "jsd"]
BATCH, LENGTH, VOCAB = 3, 23, 50


def lm_logits(seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(BATCH, LENGTH, VOCAB, generator=generator, dtype=torch.float64) * 4).to(dtype)


def ragged_mask() -> torch.Tensor:
    """Rows of different lengths, a masked prompt, and a stretch no row counts (a chunk to skip)."""
    mask = torch.arange(LENGTH)[None, :] < torch.tensor([23, 17, 9])[:, None]
    mask[:, :3] = False
    mask[:, 10:15] = False
    return mask


def value_and_gradient(loss_of, student: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    student = student.detach().requires_grad_(True)
    loss = loss_of(student)
    loss.backward()
    return loss.detach(), student.grad


def assert_same(loss_of_full, loss_of_chunked, student: torch.Tensor) -> None:
    full, full_grad = value_and_gradient(loss_of_full, student)
    chunked, chunked_grad = value_and_gradient(loss_of_chunked, student)
    torch.testing.assert_close(chunked, full, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(chunked_grad, full_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("chunk", [1, 4, 7, 22])
def test_chunked_soft_target_loss_equals_the_full_loss_in_float64(divergence, chunk):
    teacher, mask = lm_logits(2), ragged_mask()

    def loss(student, chunk_size=None):
        return soft_target_loss(
            student,
            teacher,
            temperature=2.0,
            divergence=divergence,
            jsd_beta=0.3,
            mask=mask,
            chunk_size=chunk_size,
        )

    assert_same(loss, lambda student: loss(student, chunk), lm_logits(1))


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_chunked_soft_target_loss_without_a_mask_equals_the_full_loss(divergence):
    teacher = lm_logits(2)

    def loss(student, chunk_size=None):
        return soft_target_loss(
            student, teacher, temperature=1.0, divergence=divergence, chunk_size=chunk_size
        )

    assert_same(loss, lambda student: loss(student, 5), lm_logits(1))


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("k", [5, VOCAB])
def test_chunked_top_k_loss_equals_the_full_top_k_loss_in_float64(divergence, k):
    targets = topk_teacher_targets(lm_logits(2), k=k, temperature=2.0)
    stored = (targets["topk_logprobs"].double(), targets["topk_indices"], targets["tail_logprob"].double())
    mask = ragged_mask()

    def loss(student, chunk_size=None):
        return topk_soft_target_loss(
            student, *stored, temperature=2.0, divergence=divergence, mask=mask, chunk_size=chunk_size
        )

    assert_same(loss, lambda student: loss(student, 6), lm_logits(1))


def test_chunked_cross_entropy_equals_the_full_cross_entropy_in_float64():
    labels = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(3))
    labels[~ragged_mask()] = -100
    assert_same(
        lambda student: hard_target_loss(student, labels),
        lambda student: hard_target_loss(student, labels, chunk_size=4),
        lm_logits(1),
    )


def test_a_fully_masked_batch_is_zero_and_its_gradient_is_zero():
    mask = torch.zeros(BATCH, LENGTH, dtype=torch.bool)
    loss, grad = value_and_gradient(
        lambda student: soft_target_loss(student, lm_logits(2), temperature=1.0, mask=mask, chunk_size=4),
        lm_logits(1),
    )
    assert loss.item() == 0.0 and not grad.any()


def test_half_precision_logits_get_a_gradient_of_their_own_dtype_from_a_float32_loss():
    student = lm_logits(1, torch.bfloat16).requires_grad_(True)
    teacher, mask = lm_logits(2, torch.bfloat16), ragged_mask()
    chunked = soft_target_loss(student, teacher, temperature=1.0, mask=mask, chunk_size=4)
    chunked.backward()
    full = soft_target_loss(student.detach().float(), teacher, temperature=1.0, mask=mask)
    assert chunked.dtype == torch.float32 and student.grad.dtype == torch.bfloat16
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-6)


def test_without_gradients_a_chunked_loss_only_computes_the_value():
    student = lm_logits(1).requires_grad_(True)
    with torch.no_grad():
        loss = soft_target_loss(student, lm_logits(2), temperature=1.0, chunk_size=4)
    assert not loss.requires_grad
    assert loss.item() == soft_target_loss(student.detach(), lm_logits(2), temperature=1.0).item()


def test_a_chunked_graph_runs_backward_once():
    student = lm_logits(1).requires_grad_(True)
    loss = soft_target_loss(student, lm_logits(2), temperature=1.0, chunk_size=4)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


def test_a_chunk_holds_about_the_element_budget_of_its_device():
    assert chunk_length(2, 32_000, elements=2**23) == 131
    assert chunk_length(64, 150_000, elements=2**23) == 1
    assert chunk_length(1, 10, elements=100) == 10
    assert chunk_length(1, 32_000) == 2**22 // 32_000
    assert chunk_length(1, 32_000, device_type="cuda") == 2**24 // 32_000
