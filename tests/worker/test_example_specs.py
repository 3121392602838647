"""Each spec in distillery/examples/ is accepted by the API, runs on a real worker, gives a loadable student.

Each example keeps its method, layer choices and model references; tiny models built from configs stand in
at the referenced paths, and the training block shrinks to a few steps.
"""

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_assets import (
    counting_chats,
    counting_rows,
    jsonl_bytes,
    save_tiny_bert_classifier,
    save_tiny_gpt2,
    sentiment_rows,
)

from app.cli.quickstart.specs import BASE_MODEL, TEACHER_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker_process")]

EXAMPLES = Path(__file__).resolve().parents[2] / "distillery" / "examples"
SPECS = sorted(EXAMPLES.glob("*.yaml"))
# The classification examples name what the quickstart leaves (MiniLM-L6: 6 encoder layers); the causal-LM
# examples' layer lists need 24 decoder layers (GPT-2 medium).
BERT_PATHS = [TEACHER_MODEL, BASE_MODEL]
# The chat example's Qwen paths get tiny GPT-2s too: each path needs a causal LM, of any family.
GPT2_PATHS = {
    "teachers/gpt2-medium-support": 24,
    "base/distilgpt2": 6,
    "teachers/qwen2.5-1.5b-instruct": 4,
    "base/qwen2.5-0.5b-instruct": 2,
    "teachers/qwen2.5-1.5b-support": 2,
    "base/smollm2-135m": 2,
}


@pytest.fixture
def example_models(model_root: Path) -> None:
    """Tiny models at every path the examples reference."""
    for path in BERT_PATHS:
        if not (model_root / path / "config.json").exists():
            save_tiny_bert_classifier(model_root / path, layers=6)
    for path, layers in GPT2_PATHS.items():
        if not (model_root / path / "config.json").exists():
            save_tiny_gpt2(model_root / path, layers=layers)


def shrink(spec: dict[str, Any], train_file: str) -> dict[str, Any]:
    """The example with its file id filled in and just enough training to prove it runs."""
    spec["data"].update({"train_file": train_file, "max_length": 24})
    for field in ("eval_file", "test_file"):
        if field in spec["data"]:
            spec["data"][field] = train_file
    spec["data"].pop("max_train_samples", None)
    spec["training"] = {
        "epochs": 1,
        "max_steps": 3,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "warmup_ratio": 0,
    }
    sequence_level = spec["method"].get("sequence_level")
    if sequence_level:
        sequence_level.update({"max_new_tokens": 4, "prompt_tokens": 3})
    return spec


@pytest.mark.parametrize("path", SPECS, ids=[path.stem for path in SPECS])
def test_example_spec_runs_on_the_worker_and_its_student_loads(
    path: Path,
    client: Any,
    example_models: None,
    wait_for: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    spec = yaml.safe_load(path.read_text())
    if spec["task"] != "causal_lm":
        rows = sentiment_rows(64)
    else:
        rows = counting_chats(64) if spec["data"].get("format") == "chat" else counting_rows(64)
    uploaded = client.post("/v1/files", files={"file": ("rows.jsonl", jsonl_bytes(rows))})
    assert uploaded.status_code == 201, uploaded.text

    created = client.post("/v1/jobs", json=shrink(spec, uploaded.json()["id"]))
    assert created.status_code == 201, created.text
    done = wait_for(client, created.json()["id"])

    assert done["status"] == "succeeded", done["error"]
    archive = client.get(f"/v1/jobs/{done['id']}/artifacts/student.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    auto = AutoModelForCausalLM if spec["task"] == "causal_lm" else AutoModelForSequenceClassification
    student = auto.from_pretrained(tmp_path / "student")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "student")
    assert student(**tokenizer(["one two three"], return_tensors="pt")).logits.shape[0] == 1
    if spec["method"]["type"] == "self":
        assert student.config.num_hidden_layers == spec["method"]["keep_exit"]
