"""On a GPU: precision `auto` trains under bf16 autocast and the run ends like on the CPU."""

import pytest
import torch
from engine_helpers import loss_fell, train_losses

from distillery.jobspec import JobSpec
from engine.run import run_job

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize(
    ("task", "teacher", "data_file"),
    [
        ("sequence_classification", "bert-sentiment", "file-sentiment"),
        ("causal_lm", "gpt2-counting", "file-counting"),
    ],
)
def test_auto_precision_uses_bf16_on_a_gpu(engine_env, fast_training, tmp_path, task, teacher, data_file):
    spec = JobSpec.model_validate(
        {
            "task": task,
            "teacher": {"path": teacher},
            "student": {"init": "config", "config": {"num_hidden_layers": 2}},
            "data": {"train_file": data_file, "max_length": 32},
            "method": {"type": "response"},
            "training": {**fast_training, "precision": "auto"},
        }
    )
    result = run_job(
        spec,
        workdir=tmp_path,
        resolve_model=engine_env.resolve_model,
        resolve_file=engine_env.resolve_file,
        device="cuda",
    )

    assert result.status == "succeeded"
    assert result.report["training"]["precision"] == "bf16"
    assert result.report["latency"]["device"].startswith("cuda")
    assert loss_fell(train_losses(tmp_path))
