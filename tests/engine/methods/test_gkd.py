"""GKD (generalised and on-policy KD): its divergence, its batch schedule, generation and whole jobs."""

import json
import math

import pytest
import torch
from engine_helpers import loss_fell, train_losses

from distillery.jobspec import GKDMethod, JobSpec
from distillery.jobspec.methods import DEFAULT_TOP_K
from engine.batching import EXAMPLE_INDEX
from engine.generation import Sampling, batch_prompts, sample_continuations
from engine.methods.gkd import GKDDistillation, gkd_loss, on_policy_turn
from engine.methods.teacher import stored_k, token_fields
from engine.run import run_job
from engine.teacher_cache import TeacherCacheConfig
from engine.teacher_cache.store import entry_paths, fields_to_json


def direct_gkd(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, beta: float, t: float
) -> float:
    """The GKD divergence written out position by position, straight from its definition."""
    total, count = 0.0, 0
    for row in range(student.shape[0]):
        for position in range(student.shape[1] - 1):
            if labels[row, position + 1] == -100:
                continue
            p = torch.softmax(teacher[row, position] / t, dim=-1).tolist()
            q = torch.softmax(student[row, position] / t, dim=-1).tolist()
            m = [beta * pi + (1 - beta) * qi for pi, qi in zip(p, q, strict=True)]
            kl_p_m = sum(pi * math.log(pi / mi) for pi, mi in zip(p, m, strict=True))
            kl_q_m = sum(qi * math.log(qi / mi) for qi, mi in zip(q, m, strict=True))
            if beta == 0:
                value = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
            elif beta == 1:
                value = sum(qi * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))
            else:
                value = beta * kl_p_m + (1 - beta) * kl_q_m
            total, count = total + value, count + 1
    return t * t * total / count


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_the_gkd_loss_is_the_generalised_jsd_of_its_definition_in_float64(beta, temperature):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 6, 9, generator=generator, dtype=torch.float64)
    teacher = torch.randn(2, 6, 9, generator=generator, dtype=torch.float64) * 2
    labels = torch.randint(0, 9, (2, 6), generator=generator)
    labels[0, :2], labels[1, 5] = -100, -100

    loss = gkd_loss(student, {"logits": teacher}, labels, beta=beta, temperature=temperature)

    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(direct_gkd(student, teacher, labels, beta, temperature), rel=1e-12)


@pytest.mark.parametrize("lmbda", [0.0, 0.25, 0.3, 0.5, 1.0])
def test_a_share_lmbda_of_batches_is_on_policy_spread_evenly(lmbda):
    turns = [on_policy_turn(n, lmbda) for n in range(200)]
    for count in (10, 37, 200):
        assert sum(turns[:count]) == math.floor(count * lmbda)
    if 0 < lmbda <= 0.5:
        assert not any(a and b for a, b in zip(turns, turns[1:], strict=False))


def test_prompts_are_the_masked_prefix_or_the_first_tokens():
    batch = {
        "input_ids": torch.tensor([[5, 6, 7, 8, 9, 0], [5, 6, 7, 8, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]),
        "labels": torch.tensor([[-100, -100, 7, 8, 9, 0], [5, 6, 7, 8, 0, -100]]),
    }
    assert batch_prompts(batch, prompt_tokens=3, eos_token_id=0) == [[5, 6], [5, 6, 7]]
    # A text shorter than prompt_tokens keeps one token to continue.
    assert batch_prompts(batch, prompt_tokens=16, eos_token_id=0)[1] == [5, 6, 7]


def test_the_student_samples_in_eval_and_inference_mode_with_its_cache_and_trains_again(make_gpt2):
    model = make_gpt2()
    model.train()
    seen = []

    def record(module, args, kwargs):
        seen.append((module.training, torch.is_inference_mode_enabled(), kwargs["input_ids"].shape[1]))

    model.register_forward_pre_hook(record, with_kwargs=True)
    torch.manual_seed(0)
    continuations = sample_continuations(
        model, [[3, 4, 5], [6]], Sampling(max_new_tokens=4, top_p=0.9), pad_token_id=0, eos_token_id=None
    )

    assert [len(row) for row in continuations] == [4, 4]
    assert model.training
    assert all(not training and inference for training, inference, _ in seen)
    # With the KV cache, each step after the prompt feeds the one new token only.
    assert [fed for _, _, fed in seen] == [3, 1, 1, 1]


def test_off_policy_batches_read_stored_outputs_and_on_policy_ones_run_the_teacher(
    make_gpt2, context, lm_batch
):
    teacher, student = make_gpt2(layers=2, seed=1), make_gpt2(layers=1, seed=2)
    method = GKDDistillation(
        GKDMethod(lmbda=0.5, top_k="exact", generation={"max_new_tokens": 3, "prompt_tokens": 2}),
        context(student, teacher, task="causal_lm"),
    )
    with torch.no_grad():
        logits = teacher(input_ids=lm_batch["input_ids"], attention_mask=lm_batch["attention_mask"]).logits
    lookups, teacher_calls = [], []
    teacher.register_forward_hook(lambda *_: teacher_calls.append(1))

    def stored(indices, width, device):
        lookups.append(indices.tolist())
        return {"logits": logits[:, :width]}

    method.attach_stored_outputs(stored)
    batch = {**lm_batch, EXAMPLE_INDEX: torch.arange(lm_batch["input_ids"].shape[0])}
    terms = [method.training_loss(batch)[1] for _ in range(4)]

    assert [term["on_policy"] for term in terms] == [0.0, 1.0, 0.0, 1.0]
    assert len(lookups) == 2 and len(teacher_calls) == 2
    assert method.training_notes()["on_policy_batches"] == 2
    assert int(method.state_dict()["batches_seen"]) == 4


def test_on_policy_gkd_samples_every_batch_and_lowers_the_loss(run_spec, fast_training, tmp_path):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {
            "type": "gkd",
            "lmbda": 1.0,
            "beta": 0.5,
            "generation": {"max_new_tokens": 6, "prompt_tokens": 3},
        },
        "training": {**fast_training, "epochs": 3},
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    training = result.report["training"]
    assert training["on_policy_batches"] == training["train_batches"] == 18
    assert training["generated_tokens"] > 18 * 16
    assert training["teacher_cache"]["status"] == "live"
    assert loss_fell(train_losses(tmp_path), window=5)


def test_half_on_policy_gkd_on_a_lora_student_stores_the_teacher_for_the_rest(
    run_spec, fast_training, tmp_path
):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {
            "init": "teacher_layers",
            "layers": [0, 3],
            "lora": {"r": 4, "target_modules": ["c_attn"]},
        },
        "data": {"train_file": "file-counting-prompts", "prompt_column": "prompt", "max_length": 32},
        "method": {"type": "gkd", "lmbda": 0.5, "beta": 0.0, "generation": {"max_new_tokens": 6}},
        "training": {**fast_training, "epochs": 2, "teacher_cache": "on", "learning_rate": 1e-2},
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    training = result.report["training"]
    assert training["train_batches"] == 12 and training["on_policy_batches"] == 6
    assert training["teacher_cache"]["status"] == "miss"
    # Two layers of GPT-2's c_attn (32 -> 96 wide) with rank-4 adapters: 4 * (32 + 96) each.
    assert training["trainable_parameters"] == 2 * 4 * (32 + 96)
    assert loss_fell(train_losses(tmp_path))


def test_a_two_epoch_off_policy_gkd_job_stores_the_teachers_top_k_not_its_logits(
    engine_env, fast_training, tmp_path
):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "gkd", "lmbda": 0.0, "beta": 0.0, "top_k": 4},
        "training": {**fast_training, "epochs": 2},
    }
    result = run_job(
        JobSpec.model_validate(spec),
        workdir=tmp_path / "job",
        resolve_model=engine_env.resolve_model,
        resolve_file=engine_env.resolve_file,
        device="cpu",
        teacher_cache=TeacherCacheConfig(tmp_path / "cache"),
    )

    cache = result.report["training"]["teacher_cache"]
    assert cache["status"] == "miss"
    (entry,) = entry_paths(tmp_path / "cache")
    manifest = json.loads((entry / "manifest.json").read_text())
    # Per token: 4 log-probabilities, 4 token indices and the tail's log-mass; no vocabulary-wide field.
    assert manifest["fields"] == fields_to_json(token_fields(4, width=1000))
    assert cache["bytes"] < cache["tokens"] * (4 * 6 + 2) + 8192


def test_gkd_stores_the_default_top_k_of_a_large_vocabulary_and_every_logit_when_exact():
    width = 4096
    default = GKDMethod().top_k
    assert token_fields(stored_k(default, width), width)["topk_logprobs"].shape == ("L", DEFAULT_TOP_K)
    assert set(token_fields(stored_k("exact", width), width)) == {"logits"}
    # A k that covers the vocabulary is the exact loss, stored as the (smaller) logits.
    assert set(token_fields(stored_k(default, 50), 50)) == {"logits"}
