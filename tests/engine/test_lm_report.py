"""A causal LM's report: perplexity, bits per byte, agreement, tokens/s and generations, with a control.

Also the cross-tokenizer job end to end: a teacher and a student with different BPE vocabularies.
"""

import json

import pytest
from engine_helpers import RecordingCallbacks, loss_fell, train_losses

from distillery.jobspec import JobSpec
from engine.errors import UserError
from engine.run import run_job

ROLES = ("student", "teacher", "control")


def lm_spec(**changes):
    spec = {
        "task": "causal_lm",
        "data": {"train_file": "file-counting", "test_file": "file-counting-prompts", "max_length": 32},
        "method": {"type": "response", "temperature": 1.0, "alpha": 0.8},
        "report": {"generations": 2, "max_new_tokens": 6},
        "training": {"epochs": 3, "batch_size": 16, "learning_rate": 3e-3, "warmup_ratio": 0.0, "seed": 0},
    }
    return {**spec, **changes}


@pytest.fixture(scope="module")
def cross_tokenizer_job(bpe_models, engine_env, tmp_path_factory):
    """ULD from the whole-word BPE teacher into the sub-word BPE student, the untrained one as control."""
    workdir = tmp_path_factory.mktemp("uld-job")
    spec = lm_spec(
        teacher={"path": "gpt2-bpe-teacher"},
        student={"init": "pretrained", "model": {"path": "gpt2-bpe-student"}},
        method={"type": "response", "cross_tokenizer": "uld", "temperature": 1.0, "alpha": 0.8},
        report={"control": {"path": "gpt2-bpe-student"}, "generations": 2, "max_new_tokens": 6},
    )
    callbacks = RecordingCallbacks()
    result = run_job(
        JobSpec.model_validate(spec),
        workdir=workdir,
        resolve_model=engine_env.resolve_model,
        resolve_file=engine_env.resolve_file,
        callbacks=callbacks,
        device="cpu",
    )
    return result, workdir, callbacks


def test_the_cross_tokenizer_job_trains_the_student_on_the_teacher_s_sorted_probabilities(
    cross_tokenizer_job,
):
    result, workdir, callbacks = cross_tokenizer_job
    assert result.status == "succeeded"
    assert loss_fell(train_losses(workdir))
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    aligned = [record["aligned"] for record in records if record["split"] == "train"]
    assert aligned and all(0 < value <= 1 for value in aligned)
    assert not any("teacher outputs" in message for message in callbacks.messages)


def test_the_report_measures_each_model_in_its_own_tokens_and_compares_them_by_bytes(cross_tokenizer_job):
    result, workdir, _ = cross_tokenizer_job
    report = result.report
    assert json.loads((workdir / "report.json").read_text()) == report
    section = report["language_model"]
    assert section["split"] == "test" and section["same_tokenizer"] is False
    sizes = {role: facts["vocabulary"] for role, facts in section["tokenizers"].items()}
    assert sizes["teacher"] > sizes["student"]
    # The section and the per-split metrics agree: the teacher is scored on its own tokenization.
    for role in ROLES:
        assert section[role]["perplexity"] == pytest.approx(report[role]["test"]["perplexity"], rel=1e-4)
        assert section[role]["bits_per_byte"] > 0 and section[role]["tokens_per_second"] > 0
        assert section[role]["generation_tokens_per_second"] > 0
    assert section["teacher"]["scored_tokens"] < section["student"]["scored_tokens"]  # longer tokens
    # The fitted teacher needs fewer bits per byte than the untrained control that starts the student.
    assert section["teacher"]["bits_per_byte"] < section["control"]["bits_per_byte"]
    assert section["student"]["bits_per_byte"] < section["control"]["bits_per_byte"]
    bits = section["teacher"]["bits_per_byte"] / section["student"]["bits_per_byte"]
    assert report["retention"] == {"bits_per_byte": pytest.approx(bits)}
    assert 0 < section["aligned_fraction"] <= 1 and section["agreement_positions"] > 0
    for role in ("student", "control"):
        assert 0 <= section[role]["top1_agreement"] <= 1
    assert report["teacher"]["latency_ms"] > 0 and report["control"]["latency_ms"] > 0


def test_the_generations_are_side_by_side_for_each_held_out_prompt(cross_tokenizer_job, engine_env):
    result, _, _ = cross_tokenizer_job
    lines = engine_env.files["file-counting-prompts"].read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    section = result.report["language_model"]
    assert section["generation"] == {
        "decoding": "greedy",
        "prompts": 2,
        "prompt_tokens": 8,
        "max_new_tokens": 6,
    }
    assert len(section["generations"]) == 2
    for sample in section["generations"]:
        assert set(sample) == {"prompt", *ROLES} and all(isinstance(sample[key], str) for key in sample)
        # The prompt is the start of a held-out text, cut where both tokenizers have a boundary.
        assert sample["prompt"] and any(text.startswith(sample["prompt"]) for text in texts)


def test_with_one_tokenizer_a_control_equal_to_the_teacher_agrees_with_it_everywhere(run_spec, tmp_path):
    spec = lm_spec(
        teacher={"path": "gpt2-counting"},
        student={"init": "teacher_layers", "layers": [0, 3]},
        report={"control": {"path": "gpt2-counting"}, "generations": 1, "max_new_tokens": 4},
        training={"epochs": 1, "max_steps": 2, "batch_size": 16, "learning_rate": 1e-3},
    )
    spec["data"] = {"train_file": "file-counting", "max_length": 32}
    report = run_spec(spec, tmp_path).report
    section = report["language_model"]
    assert section["split"] == "eval" and section["same_tokenizer"] is True
    assert section["aligned_fraction"] == 1.0
    assert section["control"]["top1_agreement"] == 1.0
    assert section["control"]["perplexity"] == pytest.approx(section["teacher"]["perplexity"])
    assert 0 <= section["student"]["top1_agreement"] <= 1
    assert report["retention"]["perplexity"] == pytest.approx(
        report["teacher"]["eval"]["perplexity"] / report["student"]["eval"]["perplexity"]
    )
    (sample,) = section["generations"]
    assert sample["teacher"] == sample["control"]  # greedy decoding of the same model is deterministic


def test_without_cross_tokenizer_different_vocabularies_are_refused_naming_both(
    bpe_models, run_spec, tmp_path
):
    spec = lm_spec(
        teacher={"path": "gpt2-bpe-teacher"},
        student={"init": "pretrained", "model": {"path": "gpt2-bpe-student"}},
    )
    with pytest.raises(UserError) as caught:
        run_spec(spec, tmp_path)
    error = caught.value
    assert error.param == "student.model" and error.code == "incompatible_model"
    assert "'gpt2-bpe-student'" in error.message and "'gpt2-bpe-teacher'" in error.message
    assert "method.cross_tokenizer: uld" in error.message


def test_a_classifier_report_has_a_control_and_no_language_model_section(run_spec, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "teacher_layers"},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "response"},
        "report": {"control": {"path": "bert-sentiment"}},
        "training": {"epochs": 1, "max_steps": 1, "batch_size": 16},
    }
    report = run_spec(spec, tmp_path).report
    assert "language_model" not in report
    # The control here is the teacher itself, so it measures as the teacher does (whose logits may be stored).
    assert report["control"]["eval"]["accuracy"] == pytest.approx(
        report["teacher"]["eval"]["accuracy"], abs=0.02
    )
    assert report["control"]["parameters"] == report["teacher"]["parameters"]
    assert report["control"]["latency_ms"] > 0


def test_a_control_that_reads_other_tokens_is_left_out_with_a_warning(bpe_models, run_spec, tmp_path):
    spec = lm_spec(
        teacher={"path": "gpt2-counting"},
        student={"init": "teacher_layers", "layers": [0, 3]},
        report={"control": {"path": "gpt2-bpe-student"}, "generations": 0},
        training={"epochs": 1, "max_steps": 1, "batch_size": 16},
    )
    callbacks = RecordingCallbacks()
    report = run_spec(spec, tmp_path, callbacks).report
    assert report["control"] is None and report["language_model"]["control"] is None
    assert report["language_model"]["generations"] == []
    assert any(
        message.startswith("the control is not compared in the report") for message in callbacks.messages
    )
