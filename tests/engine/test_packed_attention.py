"""Which layout packed batches take for the models' attention, and what is refused."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from engine.errors import UserError
from engine.lm.packed_attention import (
    FLASH,
    batch_readers,
    check_causal,
    packed_attention,
    packing_for,
    switch_attention,
)
from engine.lm.packing import Packing


def gpt2(attention: str = "sdpa") -> GPT2LMHeadModel:
    """A tiny GPT-2 that says it runs the given attention (set after building: without the flash-attn
    package, building one for flash attention would look for a kernel online)."""
    config = GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2, n_positions=32)
    config._attn_implementation = "sdpa"
    model = GPT2LMHeadModel(config)
    model.config._attn_implementation_internal = attention
    return model


def test_sdpa_takes_a_boolean_block_mask_eager_an_additive_one_and_flash_the_varlen_row():
    assert packing_for([gpt2(), gpt2()], 64) == Packing(64, "block_mask", additive_mask=False)
    assert packing_for([gpt2(), gpt2("eager")], 64) == Packing(64, "block_mask", additive_mask=True)
    assert packing_for([gpt2(FLASH), gpt2(FLASH)], 64) == Packing(64, "varlen")


def test_models_that_need_different_layouts_or_see_ahead_are_refused_on_data_packing():
    with pytest.raises(UserError) as mixed:
        packing_for([gpt2(FLASH), gpt2()], 64)
    assert mixed.value.param == "data.packing"
    bidirectional = gpt2()
    bidirectional.config.is_causal = False
    with pytest.raises(UserError) as ahead:
        check_causal([gpt2(), bidirectional])
    assert ahead.value.param == "data.packing" and "causal" in str(ahead.value)


def test_the_batch_readers_are_the_outer_models_and_the_teacher_once():
    student, peer, teacher = gpt2(), gpt2(), gpt2()
    holder = torch.nn.ModuleDict({"student": student, "peer": peer})
    assert batch_readers(holder, teacher) == [student, peer, teacher]


def test_on_the_cpu_packing_keeps_the_models_attention_and_gives_their_cache_back():
    model = gpt2()
    assert model.config.use_cache is True
    with packed_attention([model], capacity=32, device=torch.device("cpu"), precision="bf16") as packing:
        assert packing == Packing(32) and model.config.use_cache is False
    assert model.config._attn_implementation == "sdpa" and model.config.use_cache is True


def test_a_switch_one_model_refuses_leaves_every_model_as_it_was(monkeypatch):
    first, second = gpt2(), gpt2("eager")

    def accept(implementation: str) -> None:  # as a machine with flash attention would
        first.config._attn_implementation_internal = implementation

    def refuse(implementation: str) -> None:
        if implementation == FLASH:
            raise ImportError("flash_attn is not installed")
        second.config._attn_implementation_internal = implementation

    monkeypatch.setattr(first, "set_attn_implementation", accept)
    monkeypatch.setattr(second, "set_attn_implementation", refuse)
    assert switch_attention([first, second], FLASH) is False
    assert [first.config._attn_implementation, second.config._attn_implementation] == ["sdpa", "eager"]
