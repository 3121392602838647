"""A job with data.packing trains step for step as the padded job does, and says how it packed."""

import json

import pytest
from engine_helpers import RecordingCallbacks, train_losses

NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


def packing_spec(packing: bool) -> dict:
    """Token-level KD from stored top-k teacher outputs on the counting texts, a few fp32 steps."""
    return {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        # No dropout: its random masks would differ between the two layouts.
        "student": {"init": "config", "config": {"num_hidden_layers": 2, **NO_DROPOUT}},
        "data": {"train_file": "file-counting", "max_length": 32, "packing": packing},
        "method": {"type": "response", "temperature": 1.0, "alpha": 0.8, "top_k": 8},
        "report": {"generations": 0},
        "training": {
            "epochs": 1,
            "max_steps": 4,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "warmup_ratio": 0.0,
            "seed": 0,
            "precision": "fp32",
            "teacher_cache": "on",
        },
    }


def test_a_packed_job_follows_the_padded_jobs_losses_and_reports_its_packing(run_spec, tmp_path):
    padded = run_spec(packing_spec(False), tmp_path / "padded")
    callbacks = RecordingCallbacks()
    packed = run_spec(packing_spec(True), tmp_path / "packed", callbacks)

    assert packed.status == padded.status == "succeeded"
    assert train_losses(tmp_path / "packed") == pytest.approx(train_losses(tmp_path / "padded"), rel=1e-4)
    summary = packed.report["training"]["packing"]
    assert (summary["layout"], summary["attention"], summary["row_tokens"]) == ("block_mask", "sdpa", 32)
    assert 0 < summary["padded_fill"] < summary["packed_fill"] <= 1
    assert any(message.startswith("packing: rows of up to 32 tokens") for message in callbacks.messages)
    assert padded.report["training"]["packing"] is None
    # Throughput counts the same real tokens either way.
    records = [json.loads(line) for line in (tmp_path / "packed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
