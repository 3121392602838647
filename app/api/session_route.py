"""Routes whose sync handlers run in one trip to the thread pool and end their session there.

FastAPI runs a sync handler in the thread pool and then validates its return value in a second trip.
It also ends a dependency's session only after that, so a handler's pooled connection would be held
while its request waits for a thread; a burst of requests, each holding a connection and waiting for a
thread whose request waits for a connection, starves both pools. Here the handler is wrapped in a
coroutine that runs it in the pool and commits (or rolls back) and closes its sessions before the
thread is released: the connection goes back first, and FastAPI validates the answer of a coroutine on
the event loop, without the second trip (a model the handler built is taken as it is, not re-validated).
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.deps import end_session


class SessionEndingRoute(APIRoute):
    """An `APIRoute` whose sync endpoint runs in one pool trip that commits and closes its sessions."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not (inspect.iscoroutinefunction(endpoint) or inspect.isgeneratorfunction(endpoint)):
            endpoint = in_thread_ending_sessions(endpoint)
        super().__init__(path, endpoint, **kwargs)


def ending_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """`endpoint`, committing its sessions when it returns and rolling them back when it raises."""

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        sessions = [value for value in kwargs.values() if isinstance(value, Session)]
        try:
            result = endpoint(*args, **kwargs)
        except BaseException:
            for session in sessions:
                end_session(session, commit=False)
            raise
        for session in sessions:
            end_session(session, commit=True)
        return result

    return run


def in_thread_ending_sessions(endpoint: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """A coroutine function with `endpoint`'s signature, running it (sessions ended) in the thread pool."""
    ending = ending_sessions(endpoint)

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(ending, *args, **kwargs)

    return run
