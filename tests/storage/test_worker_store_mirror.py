"""The worker's side of an object store, on a real S3 API server: job folders, model copies, model refs."""

import io
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.storage import StoreUnavailable, store_at
from app.jobs.lifecycle import StoredModel
from worker.job_folder import JobFolder
from worker.model_downloads import local_model
from worker.transient import transient_code


@pytest.fixture
def remote(s3_server: Any, settings: Any, tmp_path: Path, monkeypatch: Any) -> Any:
    """Settings of a worker on a fresh bucket: one try per store request, retried for 30 s."""
    url = f"s3://{s3_server.new_bucket()}/store"
    for name, value in s3_server.environment(url).items():
        monkeypatch.setenv(name, value)
    return settings.model_copy(
        update={
            "storage_url": url,
            "work_dir": tmp_path / "work",
            "storage_retry_attempts": 1,
            "storage_retry_seconds": 30.0,
        }
    )


def write_checkpoint(folder: JobFolder, step: int) -> Path:
    """A checkpoint folder as the engine leaves it, with its completion mark."""
    directory = folder.path / "checkpoints" / f"step-{step}"
    directory.mkdir(parents=True)
    (directory / "method.safetensors").write_bytes(b"w" * 1000)
    (directory / "optimizer.pt").write_bytes(b"o" * 100)
    (directory / "trainer_state.json").write_text(f'{{"step": {step}}}')
    (folder.path / "metrics.jsonl").write_text(f'{{"step": {step}}}\n')
    return directory


def stored_keys(folder: JobFolder) -> set[str]:
    return {item.key.removeprefix(f"{folder.prefix}/") for item in folder.store.files_under(folder.prefix)}


def test_a_local_store_folder_is_the_stores_own_and_nothing_is_copied(settings: Any) -> None:
    folder = JobFolder.of("job_local", settings)
    assert folder.path == settings.artifacts / "jobs" / "job_local" and not folder.mirrored
    assert folder.fetch_checkpoints() == 0


def test_checkpoints_are_stored_whole_pruned_with_the_engine_and_fetched_by_another_worker(
    remote: Any, tmp_path: Path
) -> None:
    folder = JobFolder.of("job_a", remote)
    assert folder.path == remote.scratch / "jobs" / "job_a" and folder.mirrored
    first = write_checkpoint(folder, 2)
    assert folder.store_checkpoint(first) == "jobs/job_a/checkpoints/step-2"
    second = write_checkpoint(folder, 4)
    shutil.rmtree(first)  # the engine keeps the latest and the best only
    folder.store_checkpoint(second)
    assert stored_keys(folder) == {
        "checkpoints/step-4/method.safetensors",
        "checkpoints/step-4/optimizer.pt",
        "checkpoints/step-4/trainer_state.json",
        "metrics.jsonl",
    }
    # A checkpoint whose upload was cut short (no completion mark) is not taken for one.
    folder.store.put_file("jobs/job_a/checkpoints/step-6/method.safetensors", second / "method.safetensors")

    elsewhere = JobFolder.of("job_a", remote.model_copy(update={"work_dir": tmp_path / "other"}))
    assert elsewhere.fetch_checkpoints() == 1
    fetched = elsewhere.path / "checkpoints" / "step-4"
    assert (fetched / "method.safetensors").read_bytes() == b"w" * 1000
    assert sorted(p.name for p in (elsewhere.path / "checkpoints").iterdir()) == ["step-4"]
    assert (elsewhere.path / "metrics.jsonl").read_text() == '{"step": 4}\n'
    assert elsewhere.fetch_checkpoints() == 0  # what is there already is not fetched again
    elsewhere.remove_local()
    assert not elsewhere.path.exists()


def test_a_checkpoint_write_rides_out_a_store_outage(remote: Any, s3_server: Any) -> None:
    folder = JobFolder.of("job_b", remote)
    checkpoint = write_checkpoint(folder, 3)
    s3_server.stop()
    restart = threading.Timer(2.0, s3_server.start)
    restart.start()
    try:
        folder.store_checkpoint(checkpoint)
    finally:
        restart.join()
    assert "checkpoints/step-3/trainer_state.json" in stored_keys(folder)


def test_a_store_outage_is_a_transient_failure(remote: Any, s3_server: Any) -> None:
    folder = JobFolder.of("job_c", remote.model_copy(update={"storage_retry_seconds": 0.0}))
    checkpoint = write_checkpoint(folder, 1)
    s3_server.stop()
    try:
        with pytest.raises(StoreUnavailable) as raised:
            folder.store_checkpoint(checkpoint)
    finally:
        s3_server.start()
    assert transient_code(raised.value) == "storage_unavailable"


def test_a_stored_model_is_copied_once_and_again_only_when_it_changes(remote: Any, tmp_path: Path) -> None:
    store = store_at(remote.storage_url, remote)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "model.safetensors").write_bytes(b"x" * 100)
    store.put_tree("models/tiny", tmp_path / "model")

    copy = local_model(StoredModel(store, "models/tiny"), settings=remote)
    assert (copy / "model.safetensors").read_bytes() == b"x" * 100
    (copy / "marker").write_text("kept")
    assert local_model(StoredModel(store, "models/tiny"), settings=remote) == copy
    assert (copy / "marker").exists()  # the same copy, not downloaded again

    store.put_stream("models/tiny/model.safetensors", io.BytesIO(b"y" * 120))
    changed = local_model(StoredModel(store, "models/tiny"), settings=remote)
    assert changed != copy and not copy.exists()
    assert (changed / "model.safetensors").read_bytes() == b"y" * 120


def test_the_api_finds_a_model_under_an_s3_root_and_refuses_a_missing_one_with_422(
    remote: Any,
    make_client: Callable[..., Any],
    settings: Any,
    upload_file: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    root = f"{remote.storage_url}/models"
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "config.json").write_text('{"model_type": "bert"}')
    store_at(root, remote).put_tree("teacher", tmp_path / "teacher")
    client = make_client(api_key=settings.dev_api_key, model_roots=[root])
    spec = {"data": {"train_file": upload_file(client)["id"]}, "training": {"epochs": 1}}

    for reference in ("teacher", f"{root}/teacher"):
        created = client.post("/v1/jobs", json={**spec, "teacher": {"path": reference}})
        assert created.status_code == 201, created.text
    for reference in ("missing", f"{root}/missing", "../outside", "s3://other-bucket/teacher"):
        refused = client.post("/v1/jobs", json={**spec, "teacher": {"path": reference}})
        assert refused.status_code == 422, (reference, refused.text)
        assert refused.json()["error"]["param"] == "teacher.path"
        assert refused.json()["error"]["code"] == "model_not_found"
