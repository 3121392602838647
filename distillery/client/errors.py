"""The errors the client raises, each readable as one line."""

from typing import Any

import httpx


class DistilleryError(Exception):
    """Base of every error the client raises."""


class ApiError(DistilleryError):
    """An error answer from the API: `{"error": {"code", "message", "param", "type"}}`."""

    def __init__(
        self, status: int, code: str, message: str, param: str | None = None, type: str | None = None
    ) -> None:
        super().__init__(status, code, message, param)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.type = type

    def __str__(self) -> str:
        where = f"{self.param}: " if self.param else ""
        return _one_line(f"{self.status} {self.code}: {where}{self.message}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> "ApiError":
        """The error a non-2xx response describes, even when its body is not the API's error shape."""
        body = _json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(
                response.status_code,
                str(error.get("code") or "error"),
                str(error.get("message") or response.reason_phrase),
                error.get("param") or None,
                error.get("type"),
            )
        # A proxy or a framework default (e.g. FastAPI's {"detail": ...}) answered instead of the API.
        detail = body.get("detail") if isinstance(body, dict) else None
        message = str(detail) if detail is not None else (response.text.strip() or response.reason_phrase)
        code = response.reason_phrase.lower().replace(" ", "_") or "http_error"
        return cls(response.status_code, code, _shorten(message))


class StoreUnreachableError(DistilleryError):
    """The object store a download was redirected to did not answer."""

    def __init__(self, url: str, reason: str = "") -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"the object store the API redirected the download to is not reachable at {self.url}"


class ServerUnreachableError(DistilleryError):
    """Nothing answered at the server's address."""

    def __init__(self, url: str, reason: str = "") -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        hint = "is it running? start one with `distillery up`, or set DISTILLERY_URL"
        return f"the Distillery server is not reachable at {self.url} ({hint})"


class RequestTimeoutError(DistilleryError):
    """The server took longer than the client's timeout to answer."""

    def __init__(self, url: str, timeout: float | None) -> None:
        super().__init__(url, timeout)
        self.url = url
        self.timeout = timeout

    def __str__(self) -> str:
        return f"the Distillery server at {self.url} did not answer within {self.timeout} s"


class JobWaitTimeoutError(DistilleryError, TimeoutError):
    """A job was still not finished when `wait` gave up."""

    def __init__(self, job_id: str, status: str, timeout: float) -> None:
        super().__init__(job_id, status, timeout)
        self.job_id = job_id
        self.status = status
        self.timeout = timeout

    def __str__(self) -> str:
        return f"job {self.job_id} is still {self.status} after {self.timeout:g} s"


class SweepWaitTimeoutError(DistilleryError, TimeoutError):
    """A sweep was still not finished when `wait_for_sweep` gave up."""

    def __init__(self, sweep_id: str, status: str, timeout: float) -> None:
        super().__init__(sweep_id, status, timeout)
        self.sweep_id = sweep_id
        self.status = status
        self.timeout = timeout

    def __str__(self) -> str:
        return f"sweep {self.sweep_id} is still {self.status} after {self.timeout:g} s"


class UnsafeArchiveError(DistilleryError):
    """An archive holds a member that would land outside its destination, or is not a plain file."""


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str, limit: int = 300) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
