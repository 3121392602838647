"""Students built from chosen teacher layers, config overrides, and parameter counts."""

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from distillery.jobspec import StudentSpec
from engine.errors import UserError
from engine.models import (
    build_student,
    count_parameters,
    default_layers,
    find_layer_list,
    student_from_layers,
)


def test_default_layers_are_every_other_one_ending_with_the_last():
    assert default_layers(12) == [1, 3, 5, 7, 9, 11]
    assert default_layers(3) == [0, 2]
    assert default_layers(1) == [0]


def test_bert_student_copies_embeddings_chosen_layers_and_head(engine_env):
    teacher = AutoModelForSequenceClassification.from_pretrained(engine_env.model_root / "bert-sentiment")
    student = student_from_layers(teacher, [0, 3], task="sequence_classification", eager=False, seed=0)
    assert student.config.num_hidden_layers == 2
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(
        s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"]
    )
    assert torch.equal(
        s["bert.encoder.layer.1.output.dense.weight"], t["bert.encoder.layer.3.output.dense.weight"]
    )
    assert torch.equal(
        s["bert.encoder.layer.0.output.dense.weight"], t["bert.encoder.layer.0.output.dense.weight"]
    )
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])


def test_gpt2_student_copies_chosen_blocks(engine_env):
    teacher = AutoModelForCausalLM.from_pretrained(engine_env.model_root / "gpt2-counting")
    assert find_layer_list(teacher) == "transformer.h"
    student = student_from_layers(teacher, None, task="causal_lm", eager=False, seed=0)
    assert student.config.n_layer == 2
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(s["transformer.h.0.mlp.c_fc.weight"], t["transformer.h.1.mlp.c_fc.weight"])
    assert torch.equal(s["transformer.h.1.attn.c_attn.weight"], t["transformer.h.3.attn.c_attn.weight"])
    assert torch.equal(s["transformer.ln_f.weight"], t["transformer.ln_f.weight"])


def test_layers_of_an_unknown_architecture_cannot_be_copied():
    with pytest.raises(UserError) as caught:
        find_layer_list(nn.Sequential(nn.Linear(2, 2)))
    assert caught.value.param == "student.layers"


def test_config_student_applies_overrides_and_the_data_labels(engine_env):
    spec = StudentSpec(
        init="config", config={"num_hidden_layers": 1, "hidden_size": 16, "intermediate_size": 32}
    )
    labels = {"a": 0, "b": 1, "c": 2}
    student = build_student(
        spec,
        "sequence_classification",
        base_dir=engine_env.model_root / "bert-sentiment",
        label2id=labels,
        seed=0,
        eager=False,
    )
    assert (student.config.num_hidden_layers, student.config.hidden_size, student.config.num_labels) == (
        1,
        16,
        3,
    )
    assert student.config.id2label == {0: "a", 1: "b", 2: "c"}
    again = build_student(
        spec,
        "sequence_classification",
        base_dir=engine_env.model_root / "bert-sentiment",
        label2id=labels,
        seed=0,
        eager=False,
    )
    assert all(torch.equal(p, q) for p, q in zip(student.parameters(), again.parameters(), strict=True))


def config_student_error(engine_env, spec):
    """The UserError building a student of the bert-sentiment base from `spec` raises."""
    with pytest.raises(UserError) as caught:
        build_student(
            spec,
            "sequence_classification",
            base_dir=engine_env.model_root / "bert-sentiment",
            label2id={"a": 0, "b": 1},
            seed=0,
            eager=False,
        )
    return caught.value


@pytest.mark.parametrize(
    ("config", "param"),
    [
        # The base model is 32 wide with 2 heads: only the base config tells that 5 heads cannot split it.
        ({"num_hidden_layers": 1, "num_attention_heads": 5}, "student.config.num_attention_heads"),
        ({"intermediate_size": 16, "hidden_size": 31}, "student.config.hidden_size"),
        ({"hidden_act": "no-such-activation"}, "student.config.hidden_act"),
        ({"pad_token_id": 10_000}, "student.config.pad_token_id"),
        ({"no_such_field": 1}, "student.config.no_such_field"),
    ],
)
def test_a_config_the_api_cannot_judge_is_a_user_error_naming_the_field(engine_env, config, param):
    spec = StudentSpec(init="config", config=config)
    assert config_student_error(engine_env, spec).param == param


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"num_attention_heads": 0}, "student.config.num_attention_heads"),
        ({"hidden_size": -5}, "student.config.hidden_size"),
        ({"vocab_size": "abc"}, "student.config.vocab_size"),
    ],
)
def test_configs_the_api_refuses_are_user_errors_on_the_worker_too(engine_env, config, param):
    # A spec stored before the API checked these fields must still fail as the user's error.
    spec = StudentSpec.model_construct(init="config", config=config, model=None, layers=None)
    assert config_student_error(engine_env, spec).param == param


def test_parameter_counts_exclude_embeddings_and_count_tied_weights_once(engine_env):
    model = AutoModelForCausalLM.from_pretrained(engine_env.model_root / "gpt2-counting")
    counts = count_parameters(model)
    embeddings = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["without_embeddings"] == counts["total"] - embeddings


def test_a_config_student_past_the_size_limit_is_a_user_error_before_any_memory_is_used(engine_env):
    config = {"num_hidden_layers": 256, "hidden_size": 16_384, "num_attention_heads": 128}
    error = config_student_error(engine_env, StudentSpec(init="config", config=config))
    assert (error.code, error.param) == ("student_too_large", "student.config")
