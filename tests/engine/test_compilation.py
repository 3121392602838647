"""training.compile: the student's forward compiled while it trains, and put back after."""

from typing import Any

import pytest
import torch
from engine_helpers import RecordingCallbacks, train_losses
from transformers import BertConfig, BertForSequenceClassification

from engine import compilation
from engine.compilation import compiled_forward
from engine.errors import UserError


class CountingBackend:
    """AOT autograd without Inductor's code generation (a minute here), counting the graphs it is given.

    It traces the same graphs, forward and backward, with the same symbolic shapes as Inductor would.
    """

    def __init__(self) -> None:
        self.graphs = 0
        self.aot_eager = torch._dynamo.lookup_backend("aot_eager")

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        self.graphs += 1
        return self.aot_eager(graph, example_inputs)


@pytest.fixture
def backend(monkeypatch) -> CountingBackend:
    counting = CountingBackend()
    monkeypatch.setattr(compilation, "BACKEND", counting)
    torch._dynamo.reset()
    return counting


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
        hidden_dropout_prob=0.0,  # so the eager and compiled losses of a batch can be compared
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config).train()


def batch(length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(length)
    input_ids = torch.randint(5, 30, (4, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, length // 2 :] = 0  # a padded row, as in batches padded to their longest example
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": torch.tensor([0, 1, 0, 1])}


def test_a_compiled_student_trains_on_batches_of_any_length_from_one_compilation(backend):
    model = tiny_bert()
    eager_losses = [model(**batch(length)).loss for length in (7, 11, 9)]
    with compiled_forward(model, enabled=True):
        assert "forward" in vars(model)
        for length, eager_loss in zip((7, 11, 9), eager_losses, strict=True):
            loss = model(**batch(length)).loss
            loss.backward()
            torch.testing.assert_close(loss, eager_loss, rtol=1e-4, atol=1e-5)
            if length == 7:
                compiled_for_the_first_length = backend.graphs
    assert compiled_for_the_first_length > 0
    assert backend.graphs == compiled_for_the_first_length  # no recompilation for a new length
    assert "forward" not in vars(model)  # the eager forward is back, for saving and the report
    assert all(param.grad is not None for param in model.parameters())


def test_compile_off_leaves_the_model_alone():
    model = tiny_bert()
    with compiled_forward(model, enabled=False):
        assert "forward" not in vars(model)


def test_a_compiler_that_fails_on_this_worker_is_a_user_error_naming_the_option(monkeypatch):
    def broken_backend(graph: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(compilation, "BACKEND", broken_backend)
    torch._dynamo.reset()
    model = tiny_bert()
    with pytest.raises(UserError) as raised, compiled_forward(model, enabled=True):
        model(**batch(7))
    assert raised.value.code == "compile_failed" and raised.value.param == "training.compile"
    assert "no C++ compiler" in raised.value.message
    assert "forward" not in vars(model)


@pytest.mark.slow
def test_a_job_with_compile_on_trains_its_student_compiled(run_spec, fast_training, backend, tmp_path):
    spec = {
        "student": {
            "init": "config",
            "model": {"path": "bert-sentiment"},
            "config": {"num_hidden_layers": 1},
        },
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "supervised"},
        "training": {**fast_training, "max_steps": 3, "compile": True},
    }
    callbacks = RecordingCallbacks()
    result = run_spec(spec, tmp_path, callbacks)

    assert result.status == "succeeded"
    assert backend.graphs > 0
    assert any(message.startswith("compiling the student's forward") for message in callbacks.messages)
    assert len(train_losses(tmp_path)) == 3
