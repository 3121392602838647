"""One call to a receiver, bounded as a whole by the try's deadline, however the receiver answers.

httpx's timeouts bound each step (connect, each write, each read), not the call: a receiver that sends
a byte every few seconds never trips them. So the call runs on an event loop of its own under
`asyncio.timeout`, which cancels whichever step is waiting when the deadline passes: resolving the
name, connecting, TLS, sending, the answer's headers or its first bytes.
"""

import asyncio
import json
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.to_thread
import httpx

from app.core.base import utcnow
from app.core.config import Settings
from app.webhooks.signing import signed_headers
from app.webhooks.url_safety import UnsafeUrl, pinned_target

USER_AGENT = "Distillery-Webhooks/1"
# What is kept of a receiver's answer: its first bytes, never the whole body.
EXCERPT_BYTES = 1024
MAX_ERROR_CHARS = 500


class DeadlinePassed(Exception):
    """The receiver had not answered in full when the try's deadline passed."""


@dataclass(frozen=True)
class Taken:
    """A delivery taken for one try: what to send, and where."""

    delivery_id: str
    endpoint_id: str
    url: str
    secret: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class TryResult:
    """How one call went."""

    status_code: int | None
    latency_ms: int
    error: str | None = None
    excerpt: str | None = None

    @property
    def succeeded(self) -> bool:
        """A 2xx answer; a redirect is not followed, and counts as a failure."""
        return self.status_code is not None and 200 <= self.status_code < 300


def call_receiver(taken: Taken, *, settings: Settings) -> TryResult:
    """POST the signed payload to the receiver's checked address; keep its first bytes. It ends by the
    deadline (`webhook_deadline_seconds`), each step also bounded by `webhook_timeout_seconds`."""
    started = time.monotonic()
    try:
        status_code, excerpt = asyncio.run(_call(taken, settings))
    except (UnsafeUrl, httpx.HTTPError, DeadlinePassed, TimeoutError) as error:
        message = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        return TryResult(status_code=None, latency_ms=_since(started), error=message)
    return TryResult(status_code=status_code, latency_ms=_since(started), excerpt=excerpt)


async def _call(taken: Taken, settings: Settings) -> tuple[int, str]:
    """The call itself, cancelled where it waits when the deadline passes."""
    body = json.dumps(taken.payload, sort_keys=True, separators=(",", ":"))
    headers = signed_headers(taken.secret, message_id=taken.delivery_id, body=body, at=utcnow())
    check = partial(
        pinned_target,
        taken.url,
        allow_http=settings.webhook_allow_http,
        allow_private=settings.webhook_allow_private_addresses,
    )
    deadline = asyncio.timeout(settings.webhook_deadline_seconds)
    try:
        async with deadline:
            # Resolving blocks a thread: past the deadline the try ends and leaves that thread behind.
            target = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
            headers |= {
                "host": target.host_header,
                "content-type": "application/json",
                "user-agent": USER_AGENT,
            }
            # No proxy from the environment: the call must go to the address that was checked.
            async with (
                httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, trust_env=False) as client,
                client.stream(
                    "POST", target.url, content=body, headers=headers, extensions=target.extensions
                ) as response,
            ):
                return response.status_code, await _first_bytes(response)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise DeadlinePassed(
            f"no whole answer within the try's deadline of {settings.webhook_deadline_seconds:g} s"
        ) from None


async def _first_bytes(response: httpx.Response) -> str:
    """The start of the answer's body, read no further than EXCERPT_BYTES."""
    kept = b""
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= EXCERPT_BYTES:
            break
    return kept[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
