"""Which attention packed batches are laid out for: flash attention's varlen kernel where a GPU runs it,
else a block-diagonal mask (sdpa, eager), and what packing saves over padding."""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import is_flash_attn_2_available

from engine.errors import UserError
from engine.lm.packing import Packing, position_fill

logger = logging.getLogger(__name__)

FLASH = "flash_attention_2"
# Implementations that read packed examples' bounds from the position ids, and those that take a 4D mask.
VARLEN = frozenset({"flash_attention_2", "flash_attention_3"})
MASKED = frozenset({"sdpa", "eager"})


def batch_readers(method: nn.Module, teacher: PreTrainedModel | None) -> list[PreTrainedModel]:
    """Every model a train batch goes through: the method's own (student, peers) and the teacher."""
    found = [module for module in method.modules() if isinstance(module, PreTrainedModel)]
    inner = {id(sub) for model in found for sub in model.modules() if sub is not model}
    outer = [model for model in found if id(model) not in inner]
    return outer + ([teacher] if teacher is not None and teacher not in outer else [])


def implementation(model: PreTrainedModel) -> str:
    """The attention implementation the model runs."""
    return str(model.config._attn_implementation)


def check_causal(models: Sequence[PreTrainedModel]) -> None:
    """Refuse to pack for a model whose attention is not causal: its examples would see ahead."""
    for model in models:
        config = model.config
        if getattr(config, "is_encoder_decoder", False) or not getattr(config, "is_causal", True):
            raise UserError(
                f"packing needs decoder-only causal models; {type(model).__name__} is not one",
                param="data.packing",
            )


def packing_for(models: Sequence[PreTrainedModel], capacity: int) -> Packing:
    """The layout every model's attention reads: varlen for flash attention, else a block mask."""
    found = {implementation(model) for model in models}
    if found <= VARLEN:
        return Packing(capacity, "varlen")
    if found <= MASKED:
        return Packing(capacity, "block_mask", additive_mask="eager" in found)
    raise UserError(
        f"packing lays examples out for sdpa, eager or flash attention (all models alike); these models "
        f"run {', '.join(sorted(found))}",
        param="data.packing",
    )


def flash_usable(device: torch.device, precision: str) -> bool:
    """Whether flash attention can run here: a CUDA device, bf16 (it takes no fp32), the package installed."""
    return device.type == "cuda" and precision == "bf16" and is_flash_attn_2_available()


def switch_attention(models: Sequence[PreTrainedModel], wanted: str) -> bool:
    """Set every model to `wanted`; where one refuses, put them all back and say False."""
    before = [implementation(model) for model in models]
    try:
        for model in models:
            model.set_attn_implementation(wanted)
        if all(implementation(model) == wanted for model in models):
            return True
    except (ImportError, ValueError) as error:
        logger.info("packing stays on a block mask: %s", error)
    for model, previous in zip(models, before, strict=True):
        model.set_attn_implementation(previous)
    return False


@contextmanager
def packed_attention(
    models: Sequence[PreTrainedModel], *, capacity: int, device: torch.device, precision: str
) -> Iterator[Packing]:
    """The packing these models train with. Where flash attention runs they use it for the while (varlen,
    no padding at all), and get their own attention back after; elsewhere they keep theirs.

    Their KV cache is off meanwhile: transformers reads packed examples from the position ids only when
    a forward has no cache (generation asks for one itself).
    """
    check_causal(models)
    before = [(implementation(model), getattr(model.config, "use_cache", None)) for model in models]
    switched = flash_usable(device, precision) and switch_attention(models, FLASH)
    for model in models:
        model.config.use_cache = False
    try:
        yield packing_for(models, capacity)
    finally:
        for model, (previous, use_cache) in zip(models, before, strict=True):
            if switched:
                model.set_attn_implementation(previous)
            if use_cache is not None:
                model.config.use_cache = use_cache


def packing_summary(
    packing: Packing,
    models: Sequence[PreTrainedModel],
    lengths: Sequence[int],
    batches: Sequence[Sequence[int]],
) -> dict[str, Any]:
    """The layout, the attention and the share of computed positions that are tokens, packed and padded."""
    fill = position_fill(lengths, batches, packing)
    return {
        "layout": packing.layout,
        "attention": implementation(models[0]),
        "row_tokens": packing.capacity,
        "packed_fill": round(fill["packed_fill"], 4),
        "padded_fill": round(fill["padded_fill"], 4),
    }


def describe_packing(summary: dict[str, Any]) -> str:
    """One log line: how batches are packed, and how much of the computed positions are tokens."""
    if summary["layout"] == "varlen":
        how = f"each batch in one row without padding ({summary['attention']}, varlen)"
    else:
        how = (
            f"rows of up to {summary['row_tokens']} tokens with a block-diagonal attention mask "
            f"({summary['attention']})"
        )
    return (
        f"packing: {how}; over the first epoch {summary['packed_fill']:.0%} of the positions computed are "
        f"tokens, against {summary['padded_fill']:.0%} in padded batches"
    )
