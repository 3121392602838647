"""A control run is its job's spec trained on the labels alone, labelled and initialised as its twin is."""

import shutil

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from distillery.jobspec import JobSpec


def distillation(**changes) -> dict:
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "data": {
            "train_file": "file-sentiment",
            "transfer_file": "file-unlabeled",
            "max_transfer_samples": 8,
        },
        "method": {"type": "feature", "temperature": 3.0, "alpha": 0.9},
        "training": {"epochs": 2, "batch_size": 8, "seed": 7, "teacher_cache": "on"},
        "control": True,
    }
    return {**spec, **changes}


def test_the_control_keeps_student_data_seed_and_schedule_and_drops_what_needs_the_teacher():
    spec = JobSpec.model_validate(distillation())

    control = spec.control_spec()

    assert control.method.type == "supervised" and control.control is False
    assert control.data.transfer_file is None and control.data.max_transfer_samples is None
    assert (control.student, control.training, control.teacher) == (spec.student, spec.training, spec.teacher)
    assert control.data.model_dump(exclude={"transfer_file", "max_transfer_samples"}) == spec.data.model_dump(
        exclude={"transfer_file", "max_transfer_samples"}
    )


@pytest.fixture
def reversed_teacher(engine_env) -> str:
    """The sentiment teacher with its labels the other way round (positive first), its head to match."""
    target = engine_env.model_root / "bert-reversed"
    if not target.exists():
        source = engine_env.model_root / "bert-sentiment"
        model = AutoModelForSequenceClassification.from_pretrained(source)
        with torch.no_grad():
            model.classifier.weight.copy_(model.classifier.weight.flip(0))
            model.classifier.bias.copy_(model.classifier.bias.flip(0))
        model.config.id2label, model.config.label2id = (
            {0: "positive", 1: "negative"},
            {"positive": 0, "negative": 1},
        )
        model.save_pretrained(target)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            if (source / name).exists():
                shutil.copy(source / name, target / name)
    return "bert-reversed"


def test_a_control_labels_the_data_in_its_teachers_order_so_a_copied_head_lines_up(
    run_spec, reversed_teacher, tmp_path
):
    # Every teacher layer copied and a negligible learning rate: the control's student is the teacher.
    spec = distillation(
        teacher={"path": reversed_teacher},
        student={"init": "teacher_layers", "layers": [0, 1, 2, 3]},
        data={"train_file": "file-sentiment", "max_length": 32},
        method={"type": "response"},
        training={"epochs": 1, "max_steps": 1, "batch_size": 8, "learning_rate": 1e-9, "warmup_ratio": 0.0},
    )

    result = run_spec(JobSpec.model_validate(spec).control_spec().model_dump(), tmp_path)

    student = AutoModelForSequenceClassification.from_pretrained(result.student_dir)
    assert student.config.label2id == {"positive": 0, "negative": 1}
    report = result.report
    assert report["method"] == "supervised" and report["teacher"]["eval"] is not None
    assert report["student"]["eval"]["accuracy"] == pytest.approx(report["teacher"]["eval"]["accuracy"])
