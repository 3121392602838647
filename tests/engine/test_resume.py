"""Checkpoints and cancellation: a resumed run ends with exactly the weights of an uninterrupted one."""

from pathlib import Path

import torch
from engine_helpers import RecordingCallbacks, train_losses
from safetensors.torch import load_file


def resumable_spec() -> dict:
    """Dropout on, two batches per step and a checkpoint mid-epoch, so RNG and data position both matter."""
    return {
        "student": {
            "init": "config",
            "model": {"path": "bert-sentiment"},
            "config": {"num_hidden_layers": 2},
        },
        "data": {"train_file": "file-sentiment", "max_length": 32, "max_train_samples": 48},
        "method": {"type": "supervised"},
        "training": {
            "epochs": 2,
            "batch_size": 8,
            "gradient_accumulation_steps": 2,
            "learning_rate": 3e-3,
            "warmup_ratio": 0.2,
            "lr_scheduler": "cosine",
            "checkpoint_every_steps": 2,
            "seed": 7,
        },
    }


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_training_k_steps_then_resuming_gives_the_same_weights_as_training_straight(run_spec, tmp_path):
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight = run_spec(resumable_spec(), straight_dir)
    first = run_spec(resumable_spec(), resumed_dir, RecordingCallbacks(stop_after_step=4))
    assert first.status == "cancelled"
    assert (resumed_dir / "checkpoints" / "step-4").is_dir()
    callbacks = RecordingCallbacks()
    resumed = run_spec(resumable_spec(), resumed_dir, callbacks)

    assert straight.status == resumed.status == "succeeded"
    assert "resumed from the checkpoint at step 4" in callbacks.messages
    assert callbacks.progress == [5, 6]  # 48 examples / 8 per batch / 2 batches per step = 3 steps per epoch
    last_straight = weights(straight_dir / "checkpoints" / "step-6" / "method.safetensors")
    last_resumed = weights(resumed_dir / "checkpoints" / "step-6" / "method.safetensors")
    assert last_straight.keys() == last_resumed.keys()
    for name, tensor in last_straight.items():
        assert torch.equal(tensor, last_resumed[name]), name
    assert train_losses(straight_dir) == train_losses(resumed_dir)
    saved_straight = weights(straight.student_dir / "model.safetensors")
    saved_resumed = weights(resumed.student_dir / "model.safetensors")
    assert all(torch.equal(tensor, saved_resumed[name]) for name, tensor in saved_straight.items())


def test_only_the_latest_and_the_best_checkpoints_are_kept(run_spec, tmp_path):
    callbacks = RecordingCallbacks()
    result = run_spec(resumable_spec(), tmp_path, callbacks)
    kept = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    best_step = result.report["training"]["best_step"]
    assert kept == sorted({f"step-{best_step}", "step-6"})
    assert [step for step, _, _ in callbacks.checkpoints][-1] == 6
    assert any(is_best for _, _, is_best in callbacks.checkpoints)


def test_should_stop_cancels_cleanly_between_steps(run_spec, tmp_path):
    callbacks = RecordingCallbacks(stop_after_step=1)
    result = run_spec(resumable_spec(), tmp_path, callbacks)

    assert result.status == "cancelled"
    assert result.student_dir is None
    assert callbacks.progress == [1]
    assert not (tmp_path / "student").exists()
    assert not (tmp_path / "report.json").exists()
