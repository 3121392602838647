"""The teacher cache through `run_job`: reuse across jobs, invalidation, its bound and corrupt entries."""

import json
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from engine_helpers import RecordingCallbacks, train_losses

from distillery.jobspec import JobSpec
from engine.callbacks import Callbacks
from engine.run import RunResult, run_job
from engine.teacher_cache import TeacherCacheConfig, TeacherPass, prepare_teacher_outputs
from engine.teacher_cache.fields import TeacherField
from engine.teacher_cache.store import entry_paths

FEATURE_JOB = {
    "teacher": {"path": "bert-sentiment"},
    "student": {"init": "teacher_layers", "layers": [0, 2]},
    "data": {"train_file": "file-sentiment", "max_length": 32},
    "method": {"type": "feature", "temperature": 2.0, "alpha": 0.5},
    "training": {"epochs": 2, "batch_size": 16, "learning_rate": 3e-3, "warmup_ratio": 0.0, "seed": 0},
}


@pytest.fixture
def run_cached(engine_env) -> Callable[..., tuple[RunResult, RecordingCallbacks]]:
    """run_cached(spec, workdir, cache_root, max_bytes=..): a job whose teacher outputs go to cache_root."""

    def run(
        spec: dict[str, Any], workdir: Path, cache_root: Path, max_bytes: int = 10**9
    ) -> tuple[RunResult, RecordingCallbacks]:
        callbacks = RecordingCallbacks()
        result = run_job(
            JobSpec.model_validate(spec),
            workdir=workdir,
            resolve_model=engine_env.resolve_model,
            resolve_file=engine_env.resolve_file,
            callbacks=callbacks,
            device="cpu",
            teacher_cache=TeacherCacheConfig(cache_root, max_bytes),
        )
        return result, callbacks

    return run


def cache_report(result: RunResult) -> dict[str, Any]:
    return result.report["training"]["teacher_cache"]


def test_a_second_job_reuses_the_first_jobs_outputs_and_never_runs_the_teacher_to_train(run_cached, tmp_path):
    first, first_log = run_cached(FEATURE_JOB, tmp_path / "first", tmp_path / "cache")
    second, second_log = run_cached(FEATURE_JOB, tmp_path / "second", tmp_path / "cache")

    assert first.status == second.status == "succeeded"
    assert cache_report(first)["status"] == "miss" and cache_report(first)["teacher_forwards"] > 0
    assert cache_report(second)["status"] == "hit" and cache_report(second)["teacher_forwards"] == 0
    assert cache_report(second)["key"] == cache_report(first)["key"]
    assert cache_report(second)["bytes"] == cache_report(first)["bytes"] > 0
    # Positions stored, hit or miss: the report's bytes over them is the cost per token.
    assert cache_report(second)["tokens"] == cache_report(first)["tokens"] > cache_report(first)["examples"]
    assert any(m.startswith("teacher outputs: cache hit") for m in second_log.messages)
    # The same stored targets and seed train the same student, step for step.
    assert train_losses(tmp_path / "second") == pytest.approx(train_losses(tmp_path / "first"))
    assert len(list(entry_paths(tmp_path / "cache"))) == 1


def test_outputs_over_the_bound_fall_back_to_the_live_teacher(run_cached, tmp_path):
    result, callbacks = run_cached(FEATURE_JOB, tmp_path / "job", tmp_path / "cache", max_bytes=1000)

    assert result.status == "succeeded"
    report = cache_report(result)
    assert report["status"] == "live" and "over the cache bound" in report["reason"]
    assert any("the teacher runs on every step" in m for m in callbacks.messages)
    assert not list(entry_paths(tmp_path / "cache"))


def test_a_corrupt_entry_is_recomputed_and_never_fails_the_job(run_cached, tmp_path):
    run_cached(FEATURE_JOB, tmp_path / "first", tmp_path / "cache")
    (entry,) = entry_paths(tmp_path / "cache")
    shard = next(entry.glob("shard-*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-100:-50] = bytes(50)  # a damaged block in the values, header intact
    shard.write_bytes(bytes(data))

    result, callbacks = run_cached(FEATURE_JOB, tmp_path / "second", tmp_path / "cache")

    assert result.status == "succeeded"
    assert cache_report(result)["status"] == "miss"
    assert any("is unreadable" in m and "checksum" in m for m in callbacks.messages)
    assert train_losses(tmp_path / "second") == pytest.approx(train_losses(tmp_path / "first"))


def test_auto_runs_the_teacher_live_when_training_is_shorter_than_one_pass(run_cached, tmp_path):
    short = {**FEATURE_JOB, "training": {**FEATURE_JOB["training"], "max_steps": 2}}
    result, _ = run_cached(short, tmp_path / "job", tmp_path / "cache")

    assert cache_report(result)["status"] == "live"
    assert "fewer than one pass" in cache_report(result)["reason"]


def test_off_runs_the_teacher_live_and_measures_it_as_the_stored_logits_do(run_cached, tmp_path):
    stored, _ = run_cached(FEATURE_JOB, tmp_path / "stored", tmp_path / "cache")
    live = {**FEATURE_JOB, "training": {**FEATURE_JOB["training"], "teacher_cache": "off"}}
    computed, _ = run_cached(live, tmp_path / "live", tmp_path / "cache")

    assert computed.status == "succeeded" and cache_report(computed)["status"] == "off"

    for name, value in computed.report["teacher"]["eval"].items():
        assert stored.report["teacher"]["eval"][name] == pytest.approx(value, rel=1e-3, abs=1e-4)


# Key and bound, on the pass alone: a one-layer teacher over a handful of examples.

FIELDS = {"logits": TeacherField((2,), dtype="float32"), "hidden": TeacherField(("L", 4))}


def examples(rows: list[list[int]]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "input_ids": rows,
            "attention_mask": [[1] * len(r) for r in rows],
            "labels": [0] * len(rows),
            "length": [len(r) for r in rows],
        }
    )


def fake_pass(scale: float) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """A deterministic stand-in for a teacher: outputs computed from the token ids."""

    def teacher_pass(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = inputs["input_ids"].float()
        hidden = torch.stack([ids * scale, ids + 1, ids - 1, ids / 3], dim=-1)
        logits = torch.stack([ids.sum(dim=1) * scale, (ids > 0).sum(dim=1).float()], dim=-1)  # pad id 0
        return {"logits": logits, "hidden": hidden}

    return teacher_pass


def prepare(
    tmp_path: Path,
    rows: list[list[int]],
    *,
    teacher: str = "a",
    fields: dict[str, TeacherField] = FIELDS,
    max_bytes: int = 10**6,
    eval_rows: list[list[int]] | None = None,
) -> tuple[Any, Any]:
    teacher_dir = tmp_path / f"teacher-{teacher}"
    teacher_dir.mkdir(exist_ok=True)
    (teacher_dir / "model.safetensors").write_text(f"weights {teacher}")
    teacher_pass = TeacherPass(
        fields=fields,
        settings={},
        run=fake_pass(2.0),
        teacher_dir=teacher_dir,
        precision="fp32",
        autocast=nullcontext,
        device=torch.device("cpu"),
        pad_token_id=0,
    )
    return prepare_teacher_outputs(
        teacher_pass,
        {"train": examples(rows), "eval": examples(eval_rows or rows[:1])},
        mode="on",
        config=TeacherCacheConfig(tmp_path / "cache", max_bytes),
        scratch_dir=tmp_path,
        planned_visits=0,
        callbacks=Callbacks(),
    )


ROWS = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [5, 6, 7]]


def test_the_key_changes_with_the_teacher_the_data_and_the_tokenisation(tmp_path):
    _, base = prepare(tmp_path, ROWS)
    assert base.status == "miss" and base.examples == 3  # the repeated row is stored once

    assert prepare(tmp_path, ROWS)[1].status == "hit"
    # The same examples split and ordered differently are the same set.
    assert prepare(tmp_path, ROWS[1:][::-1], eval_rows=[ROWS[0]])[1].status == "hit"
    assert prepare(tmp_path, ROWS, teacher="b")[1].status == "miss"
    assert prepare(tmp_path, [*ROWS[:3], [5, 6, 8]])[1].status == "miss"
    truncated = [row[:2] for row in ROWS]  # another max_length gives other token ids
    assert prepare(tmp_path, truncated)[1].status == "miss"
    assert prepare(tmp_path, ROWS, fields={"logits": FIELDS["logits"]})[1].status == "miss"


def test_stored_rows_are_found_by_content(tmp_path):
    stored, _ = prepare(tmp_path, ROWS)
    batch = stored.lookup("train")(torch.tensor([3, 1]), 5, torch.device("cpu"))

    expected = fake_pass(2.0)({"input_ids": torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])})
    hidden = expected["hidden"].half().float()  # stored in float16
    torch.testing.assert_close(batch["hidden"][0, :3], hidden[0, :3])
    torch.testing.assert_close(batch["hidden"][1, :2], hidden[1, :2])
    assert batch["hidden"][1, 2:].abs().sum() == 0  # padding comes back as zeros
    torch.testing.assert_close(
        batch["logits"], fake_pass(2.0)({"input_ids": torch.tensor([[5, 6, 7], [8, 9, 0]])})["logits"]
    )


def test_least_recently_used_entries_are_evicted_to_stay_under_the_bound(tmp_path):
    data = [[[first, row, *range(10, 200)] for row in range(8)] for first in (1, 2, 3)]
    _, first = prepare(tmp_path, data[0])
    bound = int(first.bytes * 2.5)
    _, second = prepare(tmp_path, data[1], max_bytes=bound)
    assert prepare(tmp_path, data[0], max_bytes=bound)[1].status == "hit"  # now the most recent
    _, third = prepare(tmp_path, data[2], max_bytes=bound)

    keys = {path.name for path in entry_paths(tmp_path / "cache")}
    assert keys == {first.key, third.key}
    assert sum(f.stat().st_size for p in entry_paths(tmp_path / "cache") for f in p.iterdir()) <= bound


def test_an_entry_with_a_broken_manifest_is_recomputed(tmp_path):
    _, first = prepare(tmp_path, ROWS)
    manifest = tmp_path / "cache" / first.key / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])

    stored, again = prepare(tmp_path, ROWS)

    assert again.status == "miss" and stored is not None
    assert json.loads(manifest.read_text())["rows"] == 3


def test_a_one_epoch_job_runs_no_pre_pass_and_trains_on_the_live_teacher(run_cached, tmp_path):
    one_epoch = {**FEATURE_JOB, "training": {**FEATURE_JOB["training"], "epochs": 1}}
    result, callbacks = run_cached(one_epoch, tmp_path / "job", tmp_path / "cache")

    assert result.status == "succeeded"
    report = cache_report(result)
    assert report["status"] == "live" and report["teacher_forwards"] == 0
    assert "each about once" in report["reason"]
    assert not any("computing them once" in m for m in callbacks.messages)
    assert not list(entry_paths(tmp_path / "cache"))


def test_one_epoch_stores_the_pass_when_asked_or_when_another_job_reads_it(engine_env, tmp_path):
    one_epoch = {**FEATURE_JOB, "training": {**FEATURE_JOB["training"], "epochs": 1}}
    forced = {**one_epoch, "training": {**one_epoch["training"], "teacher_cache": "on"}}
    outcomes = {}
    for name, spec, readers in (("forced", forced, 0), ("shared", one_epoch, 1)):
        result = run_job(
            JobSpec.model_validate(spec),
            workdir=tmp_path / name,
            resolve_model=engine_env.resolve_model,
            resolve_file=engine_env.resolve_file,
            device="cpu",
            teacher_cache=TeacherCacheConfig(tmp_path / f"cache-{name}", other_readers=readers),
        )
        outcomes[name] = cache_report(result)

    assert outcomes["forced"]["status"] == outcomes["shared"]["status"] == "miss"
    assert outcomes["shared"]["teacher_forwards"] > 0
