"""The shared teacher cache's store (moto's S3 server): its LRU bound, corrupt and vanishing entries.

Each machine is a fresh local cache folder over the same store; the teacher is a deterministic stand-in.
"""

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import boto3
import datasets
import pytest
import torch

from app.core.config import Settings
from app.core.storage.s3 import S3Store
from engine.teacher_cache import CacheOutcome, TeacherCacheConfig, TeacherPass, prepare_teacher_outputs
from engine.teacher_cache.fields import TeacherField
from engine.teacher_cache.outputs import FETCHED
from storage.cache_job import Messages
from worker.execution import teacher_cache_config
from worker.shared_teacher_cache import SharedTeacherCache

FIELDS = {"logits": TeacherField((2,), dtype="float32"), "hidden": TeacherField(("L", 4))}


@pytest.fixture
def store(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """A store in a fresh bucket on the test's S3 server."""
    url = f"s3://{s3_server.new_bucket()}/distillery"
    for name, value in s3_server.environment(url).items():
        monkeypatch.setenv(name, value)
    return S3Store(url)


def teacher(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Outputs computed from the token ids."""
    ids = inputs["input_ids"].float()
    return {
        "logits": torch.stack([ids.sum(1), ids.max(1).values], -1),
        "hidden": ids[..., None].repeat(1, 1, 4),
    }


def prepare(
    machine: Path, store: S3Store, first_token: int, *, bound: int = 10**7
) -> tuple[CacheOutcome, Messages]:
    """The stored outputs for eight examples starting with `first_token`, on one machine."""
    rows = [[first_token, row, *range(10, 120)] for row in range(8)]
    data = datasets.Dataset.from_dict(
        {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows], "labels": [0] * 8,
         "length": [len(r) for r in rows]}
    )  # fmt: skip
    teacher_dir = machine.parent / "teacher"
    teacher_dir.mkdir(exist_ok=True)
    (teacher_dir / "model.safetensors").write_text("weights")
    teacher_pass = TeacherPass(
        FIELDS, {}, teacher, teacher_dir, "fp32", nullcontext, torch.device("cpu"), pad_token_id=0
    )
    callbacks = Messages()
    shared = SharedTeacherCache(store, max_bytes=bound)
    _, outcome = prepare_teacher_outputs(
        teacher_pass,
        {"train": data, "eval": data.select([0])},
        mode="on",
        config=TeacherCacheConfig(machine, bound, shared=shared),
        scratch_dir=machine,
        planned_visits=0,
        callbacks=callbacks,
    )
    return outcome, callbacks


def committed(store: S3Store) -> dict[str, dict[str, Any]]:
    """The committed manifests, by key."""
    keys = [s.key for s in store.files_under("teacher-cache") if s.key.split("/")[2] == "manifest.json"]
    return {key.split("/")[1]: json.loads(b"".join(store.iter_bytes(key))) for key in keys}


def test_the_store_evicts_its_least_recently_used_keys_to_stay_under_its_bound(store, tmp_path):
    first, _ = prepare(tmp_path / "m1", store, 1)
    bound = int(SharedTeacherCache(store, max_bytes=0).stored_bytes() * 2.5)
    time.sleep(1.1)  # S3 keeps LastModified to the second
    second, _ = prepare(tmp_path / "m2", store, 2, bound=bound)
    time.sleep(1.1)
    again, _ = prepare(tmp_path / "m3", store, 1, bound=bound)  # fetched: now the most recent
    time.sleep(1.1)
    third, _ = prepare(tmp_path / "m4", store, 3, bound=bound)

    assert (again.status, again.reason, again.teacher_forwards) == ("hit", FETCHED, 0)
    assert third.status == "miss"
    assert set(committed(store)) == {first.key, third.key}
    assert SharedTeacherCache(store, max_bytes=bound).stored_bytes() <= bound
    assert not [s.key for s in store.files_under(f"teacher-cache/{second.key}")]


def test_a_corrupt_stored_file_is_detected_and_the_entry_computed_and_committed_again(
    store, tmp_path, s3_server
):
    first, _ = prepare(tmp_path / "m1", store, 1)
    key = str(first.key)
    manifest = committed(store)[key]
    shard = f"teacher-cache/{key}/uploads/{manifest['upload']}/shard-00000.safetensors"
    data = bytearray(b"".join(store.iter_bytes(shard)))
    data[-40:-20] = bytes(20)  # a damaged block in the values, size unchanged
    client = boto3.client("s3", endpoint_url=s3_server.endpoint)
    client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{shard}", Body=bytes(data))

    again, callbacks = prepare(tmp_path / "m2", store, 1)

    assert (again.status, again.reason) == ("miss", "computed")
    assert any("fails its checksum" in m for m in callbacks.lines)
    assert committed(store)[key]["upload"] != manifest["upload"]
    assert SharedTeacherCache(store, max_bytes=10**7).fetch(key, tmp_path / "check")


def test_an_entry_whose_files_vanish_while_it_is_read_is_recomputed(store, tmp_path):
    first, _ = prepare(tmp_path / "m1", store, 1)
    key = str(first.key)
    upload = committed(store)[key]["upload"]
    # What a reader finds when an eviction removes the files after it read the manifest.
    store.delete(f"teacher-cache/{key}/uploads/{upload}")

    again, _ = prepare(tmp_path / "m2", store, 1)

    assert (again.status, again.reason) == ("miss", "computed")
    assert SharedTeacherCache(store, max_bytes=10**7).fetch(key, tmp_path / "check")


def test_with_a_local_store_the_cache_stays_in_the_store_folder_and_is_not_shared(tmp_path):
    settings = Settings(data_dir=tmp_path, storage_url="")
    config = teacher_cache_config(settings)

    assert config.shared is None
    assert config.root == settings.teacher_cache == (tmp_path / "artifacts" / "teacher-cache").resolve()


def test_a_store_that_does_not_answer_leaves_the_job_its_local_cache(store, tmp_path, s3_server):
    unreachable = S3Store(store.url, retry_attempts=2)
    s3_server.stop()
    try:
        outcome, callbacks = prepare(tmp_path / "m1", unreachable, 1)
        again, _ = prepare(tmp_path / "m1", unreachable, 1)
    finally:
        s3_server.start()

    assert (outcome.status, outcome.reason) == ("miss", "computed")
    assert any("in the shared store failed" in m for m in callbacks.lines)
    assert (again.status, again.reason) == ("hit", "found")
