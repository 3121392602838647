"""training.freeze_embeddings: the student's token embeddings stay as copied while the rest trains."""

import pytest
from engine_helpers import RecordingCallbacks, loss_fell, train_losses
from pydantic import ValidationError
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from distillery.jobspec import JobSpec

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


def response_job(training: dict, **changes) -> dict:
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {**training, "freeze_embeddings": True},
    }
    return {**spec, **changes}


def test_frozen_token_embeddings_stay_as_copied_while_the_layers_train(
    run_spec, fast_training, engine_env, tmp_path
):
    callbacks = RecordingCallbacks()
    result = run_spec(response_job(fast_training), tmp_path, callbacks)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    teacher = load_file(engine_env.model_root / "bert-sentiment" / "model.safetensors")
    student = AutoModelForSequenceClassification.from_pretrained(result.student_dir).state_dict()
    assert student[WORD_EMBEDDINGS].equal(teacher[WORD_EMBEDDINGS])
    copied_layer = "bert.encoder.layer.0.attention.self.query.weight"
    assert not student[copied_layer].equal(teacher[copied_layer])
    assert any("froze the student's token embeddings" in line for line in callbacks.messages)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"student": {"init": "config", "config": {"num_hidden_layers": 2}}}, "random embeddings"),
        ({"student": {"lora": {"r": 4}}}, "frozen already"),
        ({"task": "causal_lm", "teacher": {"path": "gpt2-counting"}}, "output layer"),
    ],
)
def test_freezing_embeddings_that_are_not_a_trained_classifiers_is_refused_on_the_field(
    fast_training, changes, reason
):
    with pytest.raises(ValidationError) as error:
        JobSpec.model_validate(response_job(fast_training, **changes))

    (detail,) = error.value.errors()
    assert detail["type"] == "param:training.freeze_embeddings"
    assert reason in detail["msg"]
