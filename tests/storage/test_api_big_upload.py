"""A 200 MB dataset streams through the API process into the S3 store, the process's memory flat."""

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.conftest import LiveS3Api

pytestmark = pytest.mark.slow
UPLOAD_BYTES = 200 * 1024 * 1024
ROW_BYTES = 1024
ROWS_PER_BLOCK = 1024
MAX_GROWTH_BYTES = 100 * 1024 * 1024


class GeneratedDataset:
    """A JSON Lines dataset of fixed-width rows, made block by block as it is sent; hashed on the way."""

    def __init__(self, size: int) -> None:
        assert size % (ROW_BYTES * ROWS_PER_BLOCK) == 0
        self.size, self.sha256 = size, hashlib.sha256()
        self.boundary = secrets.token_hex(16)
        self.head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    def rows(self) -> Iterator[bytes]:
        for block in range(self.size // (ROW_BYTES * ROWS_PER_BLOCK)):
            lines = []
            for row in range(ROWS_PER_BLOCK):
                start = f'{{"text": "row {block}-{row} '
                lines.append(start + "x" * (ROW_BYTES - len(start) - 15) + '", "label": 1}\n')
            data = "".join(lines).encode()
            self.sha256.update(data)
            yield data

    def body(self) -> Iterator[bytes]:
        """The multipart body, never whole in memory."""
        yield self.head
        yield from self.rows()
        yield self.tail

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(len(self.head) + self.size + len(self.tail)),
        }


class PeakRss:
    """Samples a process's resident memory (VmRSS) in a thread; `peak` is the most seen."""

    def __init__(self, pid: int) -> None:
        self.status, self.peak, self._done = Path(f"/proc/{pid}/status"), 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def now(self) -> int:
        for line in self.status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()


def test_a_200_mb_upload_keeps_the_api_memory_flat_and_lands_whole_in_the_bucket(
    live_s3_api: Callable[[bool], LiveS3Api], settings: Any, clean_state: None, s3_environment: Any
) -> None:
    from app.core.storage.s3 import S3Store

    assert settings.max_upload_bytes >= UPLOAD_BYTES
    live = live_s3_api(False)
    headers = {"Authorization": f"Bearer {settings.dev_api_key}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=120) as http:
        warm_up = {"file": ("warm.jsonl", b'{"text": "a", "label": 1}\n')}
        assert http.post("/v1/files", files=warm_up).status_code == 201  # the upload path's imports
        dataset = GeneratedDataset(UPLOAD_BYTES)
        with PeakRss(live.pid) as rss:
            before = rss.now()
            response = http.post(
                "/v1/files", content=dataset.body(), headers={**headers, **dataset.headers()}
            )
    assert response.status_code == 201, response.text
    file = response.json()
    assert rss.peak - before < MAX_GROWTH_BYTES, f"the API grew by {(rss.peak - before) >> 20} MB"
    assert file["bytes"] == UPLOAD_BYTES and file["sha256"] == dataset.sha256.hexdigest()
    assert file["rows"] == UPLOAD_BYTES // ROW_BYTES
    store, key = S3Store(live.storage_url), f"files/{file['id']}/big.jsonl"
    head = store.client.head_object(Bucket=store.bucket, Key=store._key(key))
    assert head["ContentLength"] == UPLOAD_BYTES
    assert head["ETag"].strip('"').endswith("-25")  # sent in 8 MB parts
    stored = hashlib.sha256()
    for chunk in store.iter_bytes(key):
        stored.update(chunk)
    assert stored.hexdigest() == dataset.sha256.hexdigest()
