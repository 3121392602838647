"""On a machine with two or more GPUs: a job over two processes through `run_job` under torchrun.

DDP over NCCL, then FSDP2 in bf16, each on CUDA device LOCAL_RANK of its rank. Skipped with fewer than
two CUDA devices; written to run as it is on such a machine (`pytest tests/gpu`).
"""

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_assets import save_tiny_bert_classifier, sentiment_rows

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # the torchrun job script and launcher
from torchrun import run_ranks  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny BERT sentiment teacher and a sentiment JSONL file."""
    root = tmp_path_factory.mktemp("gpu-distributed")
    save_tiny_bert_classifier(root / "models" / "bert", layers=4)
    data = root / "sentiment.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in sentiment_rows(256, seed=1)))
    return {"model_root": str(root / "models"), "files": {"file-sentiment": str(data)}}


def spec(parallelism: str, precision: str) -> dict[str, Any]:
    return {
        "task": "sequence_classification",
        "teacher": {"path": "bert"},
        "student": {"init": "teacher_layers", "layers": [1, 3]},
        "data": {"train_file": "file-sentiment", "eval_fraction": 0.25},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "resources": {"accelerator": "cuda", "devices": 2},
        "training": {
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "seed": 0,
            "parallelism": parallelism,
            "precision": precision,
        },
    }


@pytest.mark.parametrize(("parallelism", "precision"), [("ddp", "fp32"), ("fsdp", "bf16")])
def test_a_job_trains_over_two_gpus(assets, tmp_path, parallelism, precision):
    arguments = {
        **assets,
        "spec": spec(parallelism, precision),
        "workdir": str(tmp_path / "work"),
        "device": None,
    }
    records = run_ranks(arguments, tmp_path, processes=2)

    main, other = records
    assert main["status"] == other["status"] == "succeeded"
    training = main["report"]["training"]
    assert training["devices"] == 2 and training["parallelism"] == parallelism
    assert training["precision"] == precision
    assert main["report"]["latency"]["device"].startswith("cuda")
    assert other["student_dir"] is None
    assert (Path(main["student_dir"]) / "model.safetensors").is_file()
