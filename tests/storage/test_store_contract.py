"""The store contract: the local folder and the S3 store (on a real moto server) behave the same."""

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

BIG_BYTES = 50 * 1024 * 1024


def read_all(store: Any, key: str) -> bytes:
    return b"".join(store.iter_bytes(key))


def test_a_stream_round_trips_with_its_size_and_hash(store: Any) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    size, sha256 = store.put_stream("files/f1/data.jsonl", io.BytesIO(content))
    assert (size, sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert store.size("files/f1/data.jsonl") == len(content)
    assert read_all(store, "files/f1/data.jsonl") == content


def test_a_file_round_trips_through_put_file_and_get_file(store: Any, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights" * 1000)
    store.put_file("jobs/j1/model.bin", source)
    target = tmp_path / "out" / "deep" / "model.bin"
    store.get_file("jobs/j1/model.bin", target)
    assert target.read_bytes() == source.read_bytes()
    assert not [path for path in target.parent.iterdir() if path != target]


def test_missing_keys_have_no_size_and_cannot_be_read(store: Any, tmp_path: Path) -> None:
    assert store.size("jobs/none/x.bin") is None
    assert not store.exists("jobs/none")
    with pytest.raises(FileNotFoundError):
        read_all(store, "jobs/none/x.bin")
    with pytest.raises(FileNotFoundError):
        store.get_file("jobs/none/x.bin", tmp_path / "out" / "x.bin")


def test_a_failed_get_file_leaves_no_partial_file_and_keeps_the_old_one(store: Any, tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        store.get_file("jobs/none/x.bin", target)
    assert [path.name for path in target.parent.iterdir()] == ["x.bin"]
    assert target.read_bytes() == b"old"


def test_listing_a_folder_gives_every_file_below_it_and_nothing_beside_it(store: Any) -> None:
    for key in ["jobs/j1/a.txt", "jobs/j1/sub/b.txt", "jobs/j10/c.txt", "jobs/j2/d.txt"]:
        store.put_if_absent(key, key.encode())
    listed = {stored.key: stored.bytes for stored in store.files_under("jobs/j1")}
    assert listed == {"jobs/j1/a.txt": 13, "jobs/j1/sub/b.txt": 17}
    assert store.files_under("jobs/none") == []
    assert store.exists("jobs/j1") and store.exists("jobs/j1/a.txt")


def test_deleting_a_folder_removes_everything_below_it_only(store: Any) -> None:
    for key in ["jobs/j1/a.txt", "jobs/j1/sub/b.txt", "jobs/j10/c.txt"]:
        store.put_if_absent(key, b"x")
    store.delete("jobs/j1")
    store.delete("jobs/never-there")
    assert store.files_under("jobs/j1") == []
    assert [stored.key for stored in store.files_under("jobs")] == ["jobs/j10/c.txt"]
    store.delete("jobs/j10/c.txt")
    assert store.size("jobs/j10/c.txt") is None


def test_a_tree_round_trips(store: Any, tmp_path: Path) -> None:
    source = tmp_path / "tree"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    (source / "sub" / "weights.bin").write_bytes(b"\x00" * 4096)
    assert store.put_tree("models/tiny", source) == ["models/tiny/config.json", "models/tiny/sub/weights.bin"]
    assert store.get_tree("models/tiny", tmp_path / "copy") == 2
    assert (tmp_path / "copy" / "sub" / "weights.bin").read_bytes() == b"\x00" * 4096


def test_a_stream_past_its_limit_is_refused_and_not_stored(store: Any) -> None:
    with pytest.raises(OverflowError):
        store.put_stream("files/f2/big.csv", io.BytesIO(b"x" * (2 * 1024 * 1024)), max_bytes=1024 * 1024)
    assert store.size("files/f2/big.csv") is None


def test_only_one_of_many_concurrent_writers_creates_a_key(store: Any) -> None:
    writers, start = 8, threading.Barrier(8)
    won: list[bytes] = []

    def write(number: int) -> None:
        data = f"writer {number}".encode()
        start.wait()
        if store.put_if_absent("teacher-cache/k/manifest.json", data):
            won.append(data)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert read_all(store, "teacher-cache/k/manifest.json") == won[0]
    assert store.put_if_absent("teacher-cache/k/manifest.json", b"late") is False


@pytest.mark.parametrize("key", ["../outside", "jobs/../../outside", "/etc/passwd", "jobs\\..\\x", ""])
def test_keys_that_escape_the_store_are_refused(store: Any, key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        store.put_stream(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        store.size(key)
    with pytest.raises(ValueError):
        store.get_file(key, tmp_path / "x")
    with pytest.raises(ValueError):
        store.delete(key)


def test_only_the_s3_store_signs_download_urls(store: Any) -> None:
    store.put_if_absent("jobs/j1/report.json", b"{}")
    url = store.presigned_url("jobs/j1/report.json", seconds=60, filename="report.json")
    assert (url is None) == (store.local_path("jobs/j1/report.json") is not None)


def test_a_large_object_moves_in_parts_and_comes_back_whole(store: Any, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(BIG_BYTES // (1024 * 1024)):
            out.write(os.urandom(1024 * 1024))
    store.put_file("jobs/j1/big.bin", source)
    target = tmp_path / "back.bin"
    store.get_file("jobs/j1/big.bin", target)
    assert store.size("jobs/j1/big.bin") == BIG_BYTES
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    if store.local_path("jobs/j1/big.bin") is None:
        head = store.client.head_object(Bucket=store.bucket, Key=store._key("jobs/j1/big.bin"))
        assert head["ETag"].strip('"').endswith("-7")  # 50 MB in 8 MB parts: a multipart upload
