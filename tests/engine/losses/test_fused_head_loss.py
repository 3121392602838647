"""The output layer and the token-level losses computed together, a chunk at a time, equal today's path:
logits from F.linear, then the soft-target (or top-k) and cross-entropy losses, value and gradients."""

import pytest
import torch
import torch.nn.functional as F

from engine.losses import hard_target_loss, soft_target_loss, topk_soft_target_loss, topk_teacher_targets
from engine.losses.fused_head import fused_head_loss

DIVERGENCES = ["forward_kl", "reverse_kl", "jsd"]
BATCH, LENGTH, HIDDEN, VOCAB = 3, 23, 8, 50


def tensors(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale


def ragged_labels() -> torch.Tensor:
    """Rows of different lengths, a masked prompt, and a stretch no row counts (a chunk to skip)."""
    labels = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(3))
    counted = torch.arange(LENGTH)[None, :] < torch.tensor([23, 17, 9])[:, None]
    counted[:, :3] = False
    counted[:, 10:15] = False
    return labels.masked_fill(~counted, -100)


def head_gradients(loss_of, with_bias: bool = True) -> tuple[torch.Tensor, ...]:
    """The loss and its gradients w.r.t. the hidden states, the head's weight and its bias."""
    hidden = tensors(1, BATCH, LENGTH, HIDDEN).requires_grad_(True)
    weight = tensors(2, VOCAB, HIDDEN, scale=1.5).requires_grad_(True)
    bias = tensors(4, VOCAB).requires_grad_(True) if with_bias else None
    loss = loss_of(hidden, weight, bias)
    loss.backward()
    grads = (hidden.grad, weight.grad) + ((bias.grad,) if bias is not None else ())
    return (loss.detach(), *grads)


def assert_same(today, fused, with_bias: bool = True) -> None:
    for ours, reference in zip(
        head_gradients(fused, with_bias), head_gradients(today, with_bias), strict=True
    ):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize(("chunk", "loss_chunk"), [(4, 3), (7, 7), (30, 5)])
def test_fused_soft_targets_and_cross_entropy_equal_todays_path_in_float64(divergence, chunk, loss_chunk):
    teacher, labels = tensors(5, BATCH, LENGTH, VOCAB, scale=4.0), ragged_labels()
    mask = labels != -100

    def today(hidden, weight, bias):
        logits = F.linear(hidden, weight, bias)
        kd = soft_target_loss(
            logits, teacher, temperature=2.0, divergence=divergence, jsd_beta=0.3, mask=mask, chunk_size=6
        )
        return 0.7 * kd + 0.3 * hard_target_loss(logits, labels, chunk_size=6)

    def fused(hidden, weight, bias):
        return fused_head_loss(
            hidden,
            weight,
            bias,
            labels,
            teacher={"logits": teacher},
            temperature=2.0,
            divergence=divergence,
            jsd_beta=0.3,
            kd_weight=0.7,
            ce_weight=0.3,
            chunk_size=chunk,
            loss_chunk_size=loss_chunk,
        ).loss

    assert_same(today, fused)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("k", [5, VOCAB])
def test_fused_top_k_targets_with_their_tail_equal_todays_path_in_float64(divergence, k):
    targets = topk_teacher_targets(tensors(5, BATCH, LENGTH, VOCAB, scale=4.0), k=k, temperature=1.5)
    stored = {name: value.double() if value.is_floating_point() else value for name, value in targets.items()}
    labels = ragged_labels()

    def today(hidden, weight, bias):
        logits = F.linear(hidden, weight, bias)
        kd = topk_soft_target_loss(
            logits,
            stored["topk_logprobs"],
            stored["topk_indices"],
            stored["tail_logprob"],
            temperature=1.5,
            divergence=divergence,
            mask=labels != -100,
        )
        return 0.5 * kd + 0.5 * hard_target_loss(logits, labels)

    def fused(hidden, weight, bias):
        return fused_head_loss(
            hidden,
            weight,
            bias,
            labels,
            teacher=stored,
            temperature=1.5,
            divergence=divergence,
            kd_weight=0.5,
            ce_weight=0.5,
            chunk_size=5,
            loss_chunk_size=2,
        ).loss

    assert_same(today, fused, with_bias=False)


def test_a_narrower_teacher_is_compared_over_the_vocabulary_both_share():
    teacher, labels = tensors(5, BATCH, LENGTH, VOCAB - 6, scale=4.0), ragged_labels()

    def today(hidden, weight, bias):
        logits = F.linear(hidden, weight, bias)
        kd = soft_target_loss(logits[..., : VOCAB - 6], teacher, temperature=1.0, mask=labels != -100)
        return kd + hard_target_loss(logits, labels)

    def fused(hidden, weight, bias):
        return fused_head_loss(
            hidden, weight, bias, labels, teacher={"logits": teacher}, ce_weight=1.0, chunk_size=6
        ).loss

    assert_same(today, fused)


def test_cross_entropy_alone_and_divergence_alone_equal_todays_path():
    teacher, labels = tensors(5, BATCH, LENGTH, VOCAB, scale=4.0), ragged_labels()
    assert_same(
        lambda hidden, weight, bias: hard_target_loss(F.linear(hidden, weight, bias), labels),
        lambda hidden, weight, bias: (
            fused_head_loss(hidden, weight, bias, labels, ce_weight=1.0, chunk_size=4).loss
        ),
    )
    assert_same(
        lambda hidden, weight, bias: soft_target_loss(
            F.linear(hidden, weight, bias), teacher, temperature=3.0, divergence="jsd", mask=labels != -100
        ),
        lambda hidden, weight, bias: (
            fused_head_loss(
                hidden, weight, bias, labels, teacher={"logits": teacher}, temperature=3.0, divergence="jsd"
            ).loss
        ),
    )


def test_the_terms_are_reported_as_todays_path_computes_them():
    teacher, labels = tensors(5, BATCH, LENGTH, VOCAB, scale=4.0), ragged_labels()
    hidden, weight = tensors(1, BATCH, LENGTH, HIDDEN), tensors(2, VOCAB, HIDDEN)
    logits = F.linear(hidden, weight)
    result = fused_head_loss(
        hidden,
        weight,
        None,
        labels,
        teacher={"logits": teacher},
        temperature=2.0,
        kd_weight=0.2,
        ce_weight=0.8,
    )
    kd = soft_target_loss(logits, teacher, temperature=2.0, mask=labels != -100)
    torch.testing.assert_close(result.kd, kd, rtol=1e-12, atol=0)
    torch.testing.assert_close(result.ce, hard_target_loss(logits, labels), rtol=1e-12, atol=0)
    torch.testing.assert_close(result.loss, 0.2 * kd + 0.8 * result.ce, rtol=1e-12, atol=0)


def test_a_batch_with_no_counted_position_is_zero_with_zero_gradients():
    labels = torch.full((BATCH, LENGTH), -100)
    loss, *grads = head_gradients(
        lambda hidden, weight, bias: fused_head_loss(hidden, weight, bias, labels, ce_weight=1.0).loss
    )
    assert loss.item() == 0.0 and not any(grad.any() for grad in grads)


def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_still_do():
    hidden = tensors(1, BATCH, LENGTH, HIDDEN).requires_grad_(True)
    weight = tensors(2, VOCAB, HIDDEN)
    fused_head_loss(hidden, weight, None, ragged_labels(), ce_weight=1.0, chunk_size=4).loss.backward()
    expected = torch.autograd.grad(hard_target_loss(F.linear(hidden, weight), ragged_labels()), hidden)[0]
    torch.testing.assert_close(hidden.grad, expected, rtol=1e-12, atol=1e-15)


def test_without_gradients_only_the_value_is_computed():
    hidden = tensors(1, BATCH, LENGTH, HIDDEN).requires_grad_(True)
    weight = tensors(2, VOCAB, HIDDEN).requires_grad_(True)
    with torch.no_grad():
        result = fused_head_loss(hidden, weight, None, ragged_labels(), ce_weight=1.0, chunk_size=4)
    assert not result.loss.requires_grad
    assert result.loss.item() == pytest.approx(
        hard_target_loss(F.linear(hidden, weight), ragged_labels()).item()
    )


def test_a_fused_graph_runs_backward_once():
    hidden = tensors(1, BATCH, LENGTH, HIDDEN).requires_grad_(True)
    loss = fused_head_loss(hidden, tensors(2, VOCAB, HIDDEN), None, ragged_labels(), ce_weight=1.0).loss
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


def test_under_bf16_autocast_its_gradients_are_as_close_to_float64_as_todays_path():
    teacher, labels = tensors(5, BATCH, LENGTH, VOCAB, scale=4.0).bfloat16(), ragged_labels()
    hidden = tensors(1, BATCH, LENGTH, HIDDEN).float().requires_grad_(True)
    weight = tensors(2, VOCAB, HIDDEN).float().requires_grad_(True)

    def today(hidden, weight):
        logits = F.linear(hidden, weight)
        kd = soft_target_loss(logits, teacher, temperature=1.0, mask=labels != -100)
        return kd + hard_target_loss(logits, labels)

    def fused(hidden, weight):
        targets = {"logits": teacher}
        return fused_head_loss(
            hidden, weight, None, labels, teacher=targets, ce_weight=1.0, chunk_size=4
        ).loss

    exact = torch.autograd.grad(today(hidden.double(), weight.double()), (hidden, weight))
    results = {}
    for name, loss_of in (("today", today), ("fused", fused)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_of(hidden, weight)
        results[name] = (loss, torch.autograd.grad(loss, (hidden, weight)))
    assert results["fused"][0].dtype == torch.float32
    torch.testing.assert_close(results["fused"][0], results["today"][0], rtol=1e-5, atol=1e-6)
    for index, truth in enumerate(exact):
        errors = {name: (grads[index] - truth).abs().max() for name, (_, grads) in results.items()}
        assert errors["fused"] <= errors["today"] * 1.1
