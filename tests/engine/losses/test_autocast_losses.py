"""Under bf16 autocast every loss is computed, and returned, in fp32."""

import pytest
import torch

from engine import losses

BATCH, LENGTH, HIDDEN, VOCAB, HEADS = 4, 12, 32, 50, 4
# Every loss the package exports is checked alike.
LOSS_NAMES = sorted(name for name in losses.__all__ if name.endswith("_loss"))


def make_inputs(dtype: torch.dtype) -> dict[str, tuple[tuple, dict]]:
    """Arguments of each public loss, made in float64 then rounded to `dtype`."""
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

    mask = torch.ones(BATCH, LENGTH, dtype=torch.bool)
    mask[0, 8:] = False
    labels = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=generator)
    attention = torch.softmax(rand(BATCH, HEADS, LENGTH, LENGTH).double(), dim=-1).to(dtype)
    top = losses.topk_teacher_targets(rand(BATCH, LENGTH, VOCAB), k=8, temperature=2.0)
    return {
        "topk_soft_target_loss": (
            (
                rand(BATCH, LENGTH, VOCAB),
                top["topk_logprobs"].to(dtype),
                top["topk_indices"],
                top["tail_logprob"].to(dtype),
            ),
            {"temperature": 2.0, "mask": mask},
        ),
        "soft_target_loss": (
            (rand(BATCH, LENGTH, VOCAB), rand(BATCH, LENGTH, VOCAB)),
            {"temperature": 2.0, "mask": mask},
        ),
        "hard_target_loss": ((rand(BATCH, LENGTH, VOCAB), labels), {}),
        "hidden_state_loss": ((rand(BATCH, LENGTH, HIDDEN), rand(BATCH, LENGTH, HIDDEN)), {"mask": mask}),
        "attention_map_loss": (
            (attention, torch.softmax(attention.double() * 2, -1).to(dtype)),
            {"mask": mask},
        ),
        "self_attention_relation_loss": (
            (rand(BATCH, LENGTH, HIDDEN) * 4, rand(BATCH, LENGTH, HIDDEN) * 4),
            {"num_heads": HEADS, "mask": mask},
        ),
        "rkd_distance_loss": ((rand(8, HIDDEN), rand(8, HIDDEN)), {}),
        "rkd_angle_loss": ((rand(8, HIDDEN), rand(8, HIDDEN)), {}),
        "uld_loss": ((rand(BATCH * LENGTH, VOCAB), rand(BATCH * LENGTH, VOCAB + 7)), {"temperature": 2.0}),
    }


def test_every_public_loss_has_its_arguments_here():
    assert set(make_inputs(torch.float32)) == set(LOSS_NAMES)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_loss_under_bf16_autocast_is_fp32_and_matches_fp32(name):
    args, kwargs = make_inputs(torch.float32)[name]
    expected = getattr(losses, name)(*args, **kwargs)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = getattr(losses, name)(*args, **kwargs)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_loss_of_bf16_activations_under_autocast_is_close_to_its_float64_value(name):
    # What a model under autocast hands the loss: bf16 activations; the loss must not round them further.
    args, kwargs = make_inputs(torch.bfloat16)[name]
    exact = getattr(losses, name)(*(a.double() if a.is_floating_point() else a for a in args), **kwargs)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = getattr(losses, name)(*args, **kwargs)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(exact.item(), rel=1e-5)
