"""Causal-LM methods train through the fused head loss by default: the same loss and gradients as the
logits path, from the student's last hidden state, and the logits path wherever the output layer is not
a plain projection of that state."""

import copy
from dataclasses import replace

import pytest
import torch
from engine_helpers import loss_fell, train_losses
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from distillery.jobspec import GKDMethod, LoraSpec, ResponseMethod, SupervisedMethod
from engine.batching import EXAMPLE_INDEX
from engine.lora import add_lora
from engine.methods import response
from engine.methods.gkd import GKDDistillation
from engine.methods.response import ResponseDistillation
from engine.methods.student_head import plain_output_layer
from engine.methods.supervised import SupervisedDistillation
from engine.methods.teacher import response_targets

METHODS = {
    "response": (ResponseDistillation, ResponseMethod(alpha=0.6, temperature=2.0)),
    "response-jsd": (ResponseDistillation, ResponseMethod(divergence="jsd", jsd_beta=0.3)),
    "response-reverse-top-k": (ResponseDistillation, ResponseMethod(divergence="reverse_kl", top_k=5)),
    "gkd-forward": (GKDDistillation, GKDMethod(beta=0.0, temperature=1.5)),
    "gkd-jsd": (GKDDistillation, GKDMethod(beta=0.4)),
    "gkd-reverse": (GKDDistillation, GKDMethod(beta=1.0)),
    "supervised": (SupervisedDistillation, SupervisedMethod()),
}


def loss_and_gradients(method, batch) -> tuple[float, dict[str, torch.Tensor]]:
    method.zero_grad()
    loss, terms = method.training_loss(batch)
    loss.backward()
    assert terms["loss"] == pytest.approx(loss.item())
    grads = {
        name: param.grad.clone()
        for name, param in method.student.named_parameters()
        if param.grad is not None
    }
    return loss.item(), grads


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_gives_the_same_loss_and_gradients_fused_as_through_the_logits(
    name, make_gpt2, context, lm_batch
):
    cls, spec = METHODS[name]
    teacher, student = make_gpt2(layers=2, seed=1).double(), make_gpt2(layers=1, seed=2).double()
    fused = cls(spec, context(student, teacher, task="causal_lm"))
    logits_path = cls(
        spec, replace(context(copy.deepcopy(student), teacher, task="causal_lm"), fused_head_loss=False)
    )
    assert fused.fused_head and not logits_path.fused_head

    loss, grads = loss_and_gradients(fused, lm_batch)
    expected_loss, expected_grads = loss_and_gradients(logits_path, lm_batch)

    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert grads.keys() == expected_grads.keys()  # the tied output layer is transformer.wte
    for key, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[key], rtol=1e-10, atol=1e-13)


def test_the_student_never_makes_logits_beyond_its_last_position(make_gpt2, context, lm_batch):
    teacher, student = make_gpt2(layers=2, seed=1), make_gpt2(layers=1, seed=2)
    method = ResponseDistillation(ResponseMethod(top_k=4), context(student, teacher, task="causal_lm"))
    widths = []
    student.lm_head.register_forward_hook(lambda module, args, output: widths.append(output.shape[1]))
    method.training_loss(lm_batch)
    assert widths == [1]


def test_a_family_with_a_bias_on_its_output_layer_trains_fused(context, lm_batch):
    config = AutoConfig.for_model(
        "phi", vocab_size=40, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1
    )
    torch.manual_seed(0)
    student = AutoModelForCausalLM.from_config(config).double()
    assert student.lm_head.bias is not None
    fused = SupervisedDistillation(SupervisedMethod(), context(student, task="causal_lm"))
    logits_path = SupervisedDistillation(
        SupervisedMethod(), replace(context(copy.deepcopy(student), task="causal_lm"), fused_head_loss=False)
    )
    loss, grads = loss_and_gradients(fused, lm_batch)
    expected_loss, expected_grads = loss_and_gradients(logits_path, lm_batch)
    assert fused.fused_head and loss == pytest.approx(expected_loss, rel=1e-12)
    torch.testing.assert_close(grads["lm_head.bias"], expected_grads["lm_head.bias"], rtol=1e-10, atol=1e-13)


def test_logits_changed_after_the_output_layer_keep_the_logits_path():
    config = AutoConfig.for_model(
        "gemma2",
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        num_hidden_layers=1,
        final_logit_softcapping=2.0,
        pad_token_id=0,
    )
    assert not plain_output_layer(AutoModelForCausalLM.from_config(config))


def test_a_lora_student_trains_fused_unless_its_output_layer_is_adapted(make_gpt2, context, lm_batch):
    teacher = make_gpt2(layers=2, seed=1)
    student = add_lora(make_gpt2(layers=1, seed=2), LoraSpec(r=2, target_modules=["c_attn"]), "causal_lm")
    method = GKDDistillation(GKDMethod(), context(student, teacher, task="causal_lm"))
    loss, grads = loss_and_gradients(method, lm_batch)
    assert method.fused_head and grads and all("lora_" in name for name in grads)

    adapted_head = make_gpt2(layers=1, seed=2)
    get_peft_model(adapted_head, LoraConfig(r=2, target_modules=["lm_head"]))
    assert not plain_output_layer(adapted_head)


def test_stored_top_k_targets_train_fused_as_they_do_through_the_logits(make_gpt2, context, lm_batch):
    spec = ResponseMethod(top_k=6, temperature=1.5)
    teacher, student = make_gpt2(layers=2, seed=1).double(), make_gpt2(layers=1, seed=2).double()
    with torch.no_grad():
        logits = teacher(input_ids=lm_batch["input_ids"], attention_mask=lm_batch["attention_mask"]).logits
    stored = response_targets("causal_lm", spec, logits, 40)
    method = ResponseDistillation(spec, context(student, teacher, task="causal_lm"))
    method.attach_stored_outputs(lambda indices, width, device: stored)
    batch = {**lm_batch, EXAMPLE_INDEX: torch.arange(lm_batch["input_ids"].shape[0])}
    loss, _ = method.training_loss(batch)
    student_logits = student(
        input_ids=lm_batch["input_ids"], attention_mask=lm_batch["attention_mask"]
    ).logits
    expected, _ = response.response_loss("causal_lm", spec, student_logits, stored, lm_batch["labels"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


def test_a_tiny_lm_job_trains_through_the_fused_head(run_spec, fast_training, tmp_path, monkeypatch):
    calls = []
    real = response.fused_head_loss

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(response, "fused_head_loss", counted)
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "response", "top_k": 4, "alpha": 0.7},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert calls
    assert loss_fell(train_losses(tmp_path))
