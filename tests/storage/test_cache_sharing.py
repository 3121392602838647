"""The teacher cache shared through an S3 store (moto's server): two workers racing, a third that fetches."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from app.core.storage.s3 import S3Store
from distillery.jobspec import JobSpec
from engine.run import run_job
from engine.teacher_cache import TeacherCacheConfig
from engine.teacher_cache.outputs import FETCHED, LOST_RACE
from storage.cache_job import Messages, job_spec
from worker.shared_teacher_cache import SharedTeacherCache

ROOT = Path(__file__).resolve().parents[2]
BOUND = 10**8


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    """The tiny teacher and the training data, where every worker of the test reads them."""
    folder = tmp_path / "assets"
    save_tiny_bert_classifier(folder / "teacher")
    (folder / "train.jsonl").write_bytes(jsonl_bytes(sentiment_rows(48)))
    return folder


@pytest.fixture
def store_url(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the test's S3 server; this process's AWS variables point at it."""
    url = f"s3://{s3_server.new_bucket()}/distillery"
    for name, value in s3_server.environment(url).items():
        monkeypatch.setenv(name, value)
    return url


def start_worker_job(
    assets: Path, folder: Path, store_url: str, s3_server: Any, rendezvous: Path
) -> subprocess.Popen[bytes]:
    """A job in a process of its own, with its own data folder (so its own local cache)."""
    env = {
        **os.environ,
        **s3_server.environment(store_url),
        "DISTILLERY_DATA_DIR": str(folder / "data"),
        "DISTILLERY_TEACHER_CACHE_MAX_BYTES": str(BOUND),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    script = Path(__file__).with_name("cache_job.py")
    command = [sys.executable, str(script), str(assets), str(folder / "job"), str(folder / "result.json")]
    return subprocess.Popen([*command, str(rendezvous), "2"], env=env, cwd=ROOT)


def finished(process: subprocess.Popen[bytes], folder: Path) -> dict[str, Any]:
    assert process.wait(timeout=120) == 0
    result: dict[str, Any] = json.loads((folder / "result.json").read_text())
    assert result["status"] == "succeeded"
    return result


def local_entry(result: dict[str, Any]) -> dict[str, bytes]:
    """The files of the job's local entry, except its use stamp."""
    entry = Path(result["local_cache"]) / result["cache"]["key"]
    return {path.name: path.read_bytes() for path in entry.iterdir() if path.name != "used"}


def train_losses(workdir: Path) -> list[float]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [record["loss"] for record in map(json.loads, lines) if record["split"] == "train"]


@pytest.mark.slow
def test_two_workers_filling_one_key_at_once_commit_one_entry_and_a_third_never_runs_the_teacher(
    assets: Path, store_url: str, s3_server: Any, tmp_path: Path
) -> None:
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    folders = [tmp_path / "worker-a", tmp_path / "worker-b"]
    processes = [start_worker_job(assets, f, store_url, s3_server, rendezvous) for f in folders]
    first, second = (finished(p, f) for p, f in zip(processes, folders, strict=True))

    # Both missed the store and computed; exactly one commit won, and the other job took its copy.
    assert first["cache"]["status"] == second["cache"]["status"] == "miss"
    assert first["cache"]["key"] == second["cache"]["key"]
    assert sorted([first["cache"]["reason"], second["cache"]["reason"]]) == sorted(["computed", LOST_RACE])
    key = first["cache"]["key"]
    store = S3Store(store_url)
    keys = [stored.key for stored in store.files_under("teacher-cache")]
    assert [k for k in keys if k.split("/")[2] == "manifest.json"] == [f"teacher-cache/{key}/manifest.json"]
    uploads = {k.split("/")[3] for k in keys if k.split("/")[2] == "uploads"}
    manifest = json.loads(b"".join(store.iter_bytes(f"teacher-cache/{key}/manifest.json")))
    assert uploads == {manifest["upload"]}  # the losing upload is gone
    shared = SharedTeacherCache(store, max_bytes=BOUND)
    assert shared.fetch(key, (tmp_path / "check").resolve()) is True  # every file matches its manifest
    assert local_entry(first) == local_entry(second)  # identical targets, byte for byte
    assert train_losses(folders[0] / "job") == train_losses(folders[1] / "job")

    # A worker with an empty local cache fetches the entry, checked, and runs no teacher pass.
    messages = Messages()
    third = run_job(
        JobSpec.model_validate(job_spec()),
        workdir=tmp_path / "worker-c" / "job",
        resolve_model=lambda ref: assets / str(ref.path),
        resolve_file=lambda file_id: assets / f"{file_id}.jsonl",
        callbacks=messages,
        device="cpu",
        teacher_cache=TeacherCacheConfig(tmp_path / "worker-c" / "cache", BOUND, shared=shared),
    )
    cache = third.report["training"]["teacher_cache"]
    assert third.status == "succeeded"
    assert (cache["status"], cache["reason"], cache["teacher_forwards"]) == ("hit", FETCHED, 0)
    assert any("cache hit" in m and FETCHED in m for m in messages.lines)
    assert train_losses(tmp_path / "worker-c" / "job") == pytest.approx(train_losses(folders[0] / "job"))
