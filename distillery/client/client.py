"""`DistilleryClient`: the Python client of the Distillery HTTP API."""

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from distillery.client.archive import extract_archive, model_directory
from distillery.client.errors import (
    ApiError,
    JobWaitTimeoutError,
    RequestTimeoutError,
    ServerUnreachableError,
    SweepWaitTimeoutError,
)
from distillery.client.event_stream import StreamUnavailableError, read_stream
from distillery.client.presigned import stream_presigned

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
# A sweep ends in the same three statuses as a job.
SWEEP_TERMINAL_STATUSES = TERMINAL_STATUSES
STUDENT_ARCHIVE = "student.tar.gz"
_CHUNK_BYTES = 1024 * 1024
# Requests that change nothing, or nothing twice, may be sent again after a 503.
_REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_DEFAULT_RETRY_AFTER = 5.0
_MAX_RETRY_AFTER = 30.0
# Reconnections of an event stream in a row that deliver no event before it is given up for polling.
_STREAM_RETRIES = 3
_RECONNECT_SECONDS = 1.0


class DistilleryClient:
    """A thin, synchronous client; every method is one documented endpoint, or a loop over them."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        transport: httpx.BaseTransport | None = None,
        retry_unavailable_for: float = 60.0,
    ) -> None:
        """`retry_unavailable_for`: seconds a repeatable request keeps retrying a 503, per its Retry-After."""
        self.base_url = (base_url or os.environ.get("DISTILLERY_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key or os.environ.get("DISTILLERY_API_KEY") or None
        headers = {"User-Agent": "distillery-client"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self.retry_unavailable_for = retry_unavailable_for
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "DistilleryClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # Files

    def upload_file(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Upload a dataset (JSONL, CSV or Parquet); returns the file object."""
        path = Path(path)
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "application/octet-stream")}
            return self._json("POST", "/v1/files", files=files)

    def list_files(self, limit: int | None = None, after: str | None = None) -> dict[str, Any]:
        """One page of uploaded files."""
        return self._json("GET", "/v1/files", params=_query(limit=limit, after=after))

    def get_file(self, file_id: str) -> dict[str, Any]:
        """One uploaded file's metadata."""
        return self._json("GET", f"/v1/files/{_segment(file_id)}")

    def delete_file(self, file_id: str) -> dict[str, Any] | None:
        """Delete an uploaded file."""
        return self._json_or_none("DELETE", f"/v1/files/{_segment(file_id)}")

    # Jobs

    def create_job(
        self,
        spec: Mapping[str, Any] | Any,
        *,
        name: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit a job spec (a dict, or a `JobSpec`); returns the queued job."""
        return self._create("/v1/jobs", spec, name, idempotency_key, metadata)

    def list_jobs(
        self,
        status: str | None = None,
        limit: int = 20,
        after: str | None = None,
        sweep_id: str | None = None,
        *,
        method: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """One page of jobs, newest first (only a sweep's, with `sweep_id`; of a method; whose name contains
        `name`, ignoring case); pass `last_id` as `after`."""
        params = _query(status=status, limit=limit, after=after, sweep_id=sweep_id, method=method, name=name)
        return self._json("GET", "/v1/jobs", params=params)

    def iter_jobs(
        self, status: str | None = None, page_size: int = 100, sweep_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every job, following the list cursor page after page."""
        return _pages(lambda after: self.list_jobs(status, page_size, after, sweep_id))

    def get_job(self, job_id: str) -> dict[str, Any]:
        """One job: status, progress, error and result."""
        return self._json("GET", f"/v1/jobs/{_segment(job_id)}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop: a queued job cancels at once, a running one goes to `cancelling`."""
        return self._json("POST", f"/v1/jobs/{_segment(job_id)}/cancel")

    def delete_job(self, job_id: str) -> dict[str, Any] | None:
        """Delete a finished job and its artifacts."""
        return self._json_or_none("DELETE", f"/v1/jobs/{_segment(job_id)}")

    def wait(self, job_id: str, poll: float = 2.0, timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job is succeeded, failed or cancelled; returns the final job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                assert timeout is not None
                raise JobWaitTimeoutError(job_id, job["status"], timeout)
            time.sleep(poll)

    # Sweeps

    def create_sweep(
        self,
        spec: Mapping[str, Any] | Any,
        *,
        name: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit a sweep spec (base job spec, search space, budget, objective); returns the sweep."""
        return self._create("/v1/sweeps", spec, name, idempotency_key, metadata)

    def list_sweeps(self, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        """One page of sweeps, newest first; pass the page's `last_id` as `after` for the next."""
        return self._json("GET", "/v1/sweeps", params=_query(limit=limit, after=after))

    def iter_sweeps(self, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every sweep, following the list cursor page after page."""
        return _pages(lambda after: self.list_sweeps(page_size, after))

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """One sweep: status, stage, its trials with their params, values and curves, and its report."""
        return self._json("GET", f"/v1/sweeps/{_segment(sweep_id)}")

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Stop a sweep: no new trial starts, and its running jobs are cancelled."""
        return self._json("POST", f"/v1/sweeps/{_segment(sweep_id)}/cancel")

    def delete_sweep(self, sweep_id: str) -> dict[str, Any] | None:
        """Delete a finished sweep and its jobs."""
        return self._json_or_none("DELETE", f"/v1/sweeps/{_segment(sweep_id)}")

    def wait_for_sweep(
        self, sweep_id: str, poll: float = 5.0, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll until the sweep is succeeded, failed or cancelled; returns the final sweep."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sweep = self.get_sweep(sweep_id)
            if sweep["status"] in SWEEP_TERMINAL_STATUSES:
                return sweep
            if deadline is not None and time.monotonic() >= deadline:
                assert timeout is not None
                raise SweepWaitTimeoutError(sweep_id, sweep["status"], timeout)
            time.sleep(poll)

    # Events

    def list_events(self, job_id: str, after: int | None = None, limit: int = 100) -> dict[str, Any]:
        """One page of a job's events with a sequence number greater than `after`."""
        params = _query(after=after, limit=limit)
        return self._json("GET", f"/v1/jobs/{_segment(job_id)}/events", params=params)

    def iter_events(
        self,
        job_id: str,
        follow: bool = False,
        poll: float = 1.0,
        after: int | None = None,
        stream: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """The job's events in order; with `follow`, keep yielding new ones until the job is finished.

        Following reads the server's event stream (`stream_events`) and falls back to polling every
        `poll` seconds where the stream is not available (an older server, a proxy that breaks it).
        """
        if follow and stream:
            try:
                for event in self.stream_events(job_id, after=after):
                    after = event["id"]
                    yield event
                return
            except StreamUnavailableError as unavailable:
                logger.info("job %s: following its events by polling (%s)", job_id, unavailable.reason)
        yield from self._poll_events(job_id, follow=follow, poll=poll, after=after)

    def stream_events(self, job_id: str, after: int | None = None) -> Iterator[dict[str, Any]]:
        """The job's events as they happen, over Server-Sent Events, until the job is finished.

        A dropped connection is resumed with `Last-Event-ID`, so no event is missed or repeated; a 503
        (the database out of reach) is waited out for up to `retry_unavailable_for` seconds. Raises
        StreamUnavailableError when the server or a proxy cannot stream, or when connections keep
        failing before any event arrives.
        """
        path = f"/v1/jobs/{_segment(job_id)}/events/stream"
        failures, deadline = 0, time.monotonic() + self.retry_unavailable_for
        while True:
            try:
                with self._transport_errors():
                    for event in read_stream(self._http, path, after=after):
                        after, failures = event["id"], 0
                        yield event
            except (ServerUnreachableError, RequestTimeoutError, httpx.TransportError) as error:
                failures += 1
                if failures > _STREAM_RETRIES:
                    raise StreamUnavailableError(f"{failures} connections failed: {error}") from error
                logger.info("job %s: the event stream dropped (%s); resuming after %s", job_id, error, after)
                time.sleep(_RECONNECT_SECONDS)
                continue
            except ApiError as error:
                if error.status != 503 or time.monotonic() + _DEFAULT_RETRY_AFTER > deadline:
                    raise
                time.sleep(_DEFAULT_RETRY_AFTER)
                continue
            # The server ends the stream once the job is finished, or when it shuts down: tell which.
            if self.get_job(job_id)["status"] in TERMINAL_STATUSES:
                yield from self._drain_events(job_id, after)
                return

    def _poll_events(
        self, job_id: str, *, follow: bool, poll: float, after: int | None
    ) -> Iterator[dict[str, Any]]:
        while True:
            # The status is read before draining, so the events a job wrote before finishing are all seen.
            finished = not follow or self.get_job(job_id)["status"] in TERMINAL_STATUSES
            for event in self._drain_events(job_id, after):
                after = event["id"]
                yield event
            if finished:
                return
            time.sleep(poll)

    def _drain_events(self, job_id: str, after: int | None) -> Iterator[dict[str, Any]]:
        while True:
            page = self.list_events(job_id, after=after)
            events = page.get("data", [])
            yield from events
            if not page.get("has_more") or not events:
                return
            after = events[-1]["id"]

    # Checkpoints and artifacts

    def list_checkpoints(self, job_id: str) -> dict[str, Any]:
        """The checkpoints a job has saved so far."""
        return self._json("GET", f"/v1/jobs/{_segment(job_id)}/checkpoints")

    def list_artifacts(self, job_id: str) -> dict[str, Any]:
        """The files a job produced: the student archive, the report, the curves."""
        return self._json("GET", f"/v1/jobs/{_segment(job_id)}/artifacts")

    def download_artifact(self, job_id: str, name: str, dest: str | os.PathLike[str]) -> Path:
        """Stream one artifact to disk, from the API or the object store it redirects to; `dest` is a file
        path or an existing directory. Returns the file."""
        target = Path(dest)
        if target.is_dir():
            target = target / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"/v1/jobs/{_segment(job_id)}/artifacts/{_segment(name)}"
        # Written beside the target and renamed at the end, so an interrupted download leaves no partial file.
        fd, part_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        part = Path(part_name)
        try:
            with os.fdopen(fd, "wb") as handle, self._download(url) as response:
                for chunk in response.iter_bytes(_CHUNK_BYTES):
                    handle.write(chunk)
            part.replace(target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        logger.info("downloaded %s of job %s to %s", name, job_id, target)
        return target

    def download_student(self, job_id: str, dest_dir: str | os.PathLike[str]) -> Path:
        """Download and safely extract the student; returns the directory `from_pretrained` loads."""
        dest = Path(dest_dir)
        with tempfile.TemporaryDirectory(prefix="distillery-") as tmp:
            archive = self.download_artifact(job_id, STUDENT_ARCHIVE, Path(tmp) / STUDENT_ARCHIVE)
            names = extract_archive(archive, dest)
        return model_directory(dest, names)

    # Webhooks

    def create_webhook(self, url: str, events: Sequence[str] | None = None) -> dict[str, Any]:
        """Register a receiver of job events (all, or only `events`); the answer holds its secret, once."""
        body = {"url": url, "events": list(events) if events is not None else None}
        return self._json("POST", "/v1/webhooks", json=body)

    def list_webhooks(self, limit: int | None = None, after: str | None = None) -> dict[str, Any]:
        """One page of registered receivers."""
        return self._json("GET", "/v1/webhooks", params=_query(limit=limit, after=after))

    def delete_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        """Delete a receiver; nothing more is sent to it."""
        return self._json_or_none("DELETE", f"/v1/webhooks/{_segment(webhook_id)}")

    def list_webhook_deliveries(
        self, webhook_id: str, status: str | None = None, limit: int | None = None, after: str | None = None
    ) -> dict[str, Any]:
        """One page of the events sent to a receiver, newest first, with every try."""
        params = _query(status=status, limit=limit, after=after)
        return self._json("GET", f"/v1/webhooks/{_segment(webhook_id)}/deliveries", params=params)

    def redeliver_webhook(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        """Send a finished delivery again, under the same id."""
        path = f"/v1/webhooks/{_segment(webhook_id)}/deliveries/{_segment(delivery_id)}/redeliver"
        return self._json("POST", path)

    # Transport

    def _create(
        self,
        path: str,
        spec: Mapping[str, Any] | Any,
        name: str | None,
        idempotency_key: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """POST a spec (a dict or a pydantic model) with its optional name, metadata and idempotency key."""
        if hasattr(spec, "model_dump"):
            spec = spec.model_dump(mode="json", exclude_unset=True)
        body = dict(spec)
        if name is not None:
            body["name"] = name
        if metadata is not None:
            body["metadata"] = dict(metadata)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", path, json=body, headers=headers)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        return response.json()

    def _json_or_none(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_unavailable_for
        while True:
            with self._transport_errors():
                response = self._http.request(method, path, **kwargs)
            if response.status_code == 503 and _repeatable(method, path, kwargs):
                delay = _retry_after(response)
                if time.monotonic() + delay <= deadline:
                    logger.info("%s %s: the service is unavailable; retrying in %.0fs", method, path, delay)
                    time.sleep(delay)
                    continue
            if response.is_error:
                raise ApiError.from_response(response)
            return response

    @contextmanager
    def _stream(self, method: str, path: str) -> Iterator[httpx.Response]:
        """A streamed response; a 503 before the first byte is retried as `_send` retries it."""
        deadline = time.monotonic() + self.retry_unavailable_for
        while True:
            with self._transport_errors(), self._http.stream(method, path) as response:
                if not response.is_error:
                    yield response
                    return
                response.read()
                delay = _retry_after(response)
                if response.status_code != 503 or time.monotonic() + delay > deadline:
                    raise ApiError.from_response(response)
            logger.info("%s %s: the service is unavailable; retrying in %.0fs", method, path, delay)
            time.sleep(delay)

    @contextmanager
    def _download(self, path: str) -> Iterator[httpx.Response]:
        """A download's bytes: streamed by the API, or by the object store its 307 points to."""
        with self._stream("GET", path) as response:
            location = response.headers.get("Location") if response.is_redirect else None
            if location is None:
                yield response
                return
        with stream_presigned(str(response.url.join(location)), timeout=self.timeout) as stored:
            yield stored

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Turn httpx's connection failures into the client's own, readable errors."""
        try:
            yield
        except httpx.ConnectError as exc:
            raise ServerUnreachableError(self.base_url, str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(self.base_url, self.timeout) from exc


def _segment(value: str) -> str:
    """An id or a name quoted as one URL path segment, so a '/' in it cannot change the route."""
    return quote(str(value), safe="")


def _repeatable(method: str, path: str, kwargs: Mapping[str, Any]) -> bool:
    """Whether sending the request twice does what sending it once does."""
    if method in _REPEATABLE_METHODS:
        return True
    if method != "POST" or "files" in kwargs:
        return False  # an upload's stream cannot be replayed
    return path.endswith("/cancel") or "Idempotency-Key" in (kwargs.get("headers") or {})


def _retry_after(response: httpx.Response) -> float:
    """The wait a 503 asks for (seconds form of Retry-After), within sane bounds."""
    try:
        seconds = float(response.headers.get("Retry-After", _DEFAULT_RETRY_AFTER))
    except ValueError:
        seconds = _DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.5), _MAX_RETRY_AFTER)


def _pages(read_page: Callable[[str | None], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every item of a cursor list: `read_page(after)` gives the page after the item `after`."""
    after: str | None = None
    while True:
        page = read_page(after)
        items = page.get("data", [])
        yield from items
        if not page.get("has_more") or not items:
            return
        after = page.get("last_id") or items[-1]["id"]


def _query(**params: Any) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}
