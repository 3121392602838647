"""LoRA students: adapters on chosen modules, trained alone, saved merged or beside the base weights."""

import pytest
import torch
from engine_helpers import RecordingCallbacks, loss_fell, train_losses
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, GPT2Config, GPT2LMHeadModel

from distillery.jobspec import LoraSpec
from engine.errors import UserError
from engine.lora import add_lora, parameter_counts, save_student
from engine.models import load_teacher


def tiny_lm(seed: int = 0) -> GPT2LMHeadModel:
    """A two-layer GPT-2 over 40 tokens."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=2, n_positions=32, eos_token_id=0)
    return GPT2LMHeadModel(config)


def trained_lora_lm(spec: LoraSpec) -> tuple[GPT2LMHeadModel, torch.Tensor]:
    """A tiny LM with adapters after a few optimiser steps (so they are not zero), and a batch of ids."""
    model = add_lora(tiny_lm(), spec, "causal_lm")
    ids = torch.randint(1, 40, (4, 10), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), ids


def test_only_the_adapters_train():
    model = add_lora(tiny_lm(), LoraSpec(r=4, target_modules=["c_attn", "c_fc"]), "causal_lm")

    counts = parameter_counts(model)
    # Per layer: c_attn 32 -> 96 and c_fc 32 -> 128, each adapter r * (in + out) parameters.
    assert counts["trainable"] == 2 * 4 * ((32 + 96) + (32 + 128))
    assert counts["total"] == parameter_counts(tiny_lm())["total"] + counts["trainable"]
    assert type(model) is GPT2LMHeadModel


@pytest.mark.parametrize("merge", [True, False])
def test_the_saved_student_loads_with_from_pretrained_and_gives_the_trained_logits(tmp_path, merge):
    spec = LoraSpec(r=4, target_modules=["c_attn"], merge=merge)
    model, ids = trained_lora_lm(spec)
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        saved = save_student(model, spec, tmp_path)
        assert torch.allclose(saved(input_ids=ids).logits, trained, atol=1e-5)

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    if not merge:
        assert not torch.allclose(loaded(input_ids=ids).logits, trained, atol=1e-3)  # the base weights
        loaded = PeftModel.from_pretrained(loaded, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, trained, atol=1e-5)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists() is not merge
    # A later job that starts from this student gets the trained model, its adapter merged.
    with torch.no_grad():
        teacher = load_teacher(tmp_path, "causal_lm", eager=False, device="cpu")
        assert torch.allclose(teacher(input_ids=ids).logits, trained, atol=1e-5)


def test_a_target_that_names_no_module_is_a_user_error_listing_the_modules():
    with pytest.raises(UserError) as caught:
        add_lora(tiny_lm(), LoraSpec(target_modules=["c_attn", "q_proj"]), "causal_lm")
    assert caught.value.param == "student.lora.target_modules"
    assert "'q_proj'" in caught.value.message and "c_attn, c_fc, c_proj" in caught.value.message


def test_a_target_peft_cannot_adapt_is_a_user_error():
    with pytest.raises(UserError) as caught:
        add_lora(tiny_lm(), LoraSpec(target_modules=["ln_1"]), "causal_lm")
    assert caught.value.param == "student.lora.target_modules"


def test_every_linear_layer_can_be_adapted():
    model = add_lora(tiny_lm(), LoraSpec(r=2, target_modules=["all-linear"]), "causal_lm")
    # c_attn, c_proj (attention), c_fc and c_proj (MLP) in each of the 2 layers; never the output head.
    assert parameter_counts(model)["trainable"] == 2 * 2 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32))


def test_a_lora_classifier_student_learns_and_saves_merged(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "teacher_layers", "layers": [1, 3], "lora": {"r": 4, "alpha": 8}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {**fast_training, "epochs": 3, "learning_rate": 1e-2},
    }
    callbacks = RecordingCallbacks()
    result = run_spec(spec, tmp_path, callbacks)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    trainable = result.report["training"]["trainable_parameters"]
    # Rank-4 adapters on query and value (32 -> 32) in 2 layers, plus the trained copy of the 2-label head.
    assert trainable == 2 * 2 * 4 * (32 + 32) + (32 * 2 + 2)
    assert any(message.startswith(f"LoRA r=4: {trainable:,} of ") for message in callbacks.messages)
    model = AutoModelForSequenceClassification.from_pretrained(result.student_dir)
    assert model.config.num_hidden_layers == 2
    assert not (result.student_dir / "adapter_config.json").exists()
