"""Routes whose sync handlers end their database session in the handler's own thread.

FastAPI validates a sync handler's return value in a second trip to the thread pool, and ends a
dependency's session only after that. A handler's pooled connection would then be held while its
request waits for a thread, and a burst of requests, each holding a connection and waiting for a
thread whose request waits for a connection, starves both pools. Committing (or rolling back) and
closing the session before the handler's thread is released gives the connection back first.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from app.api.deps import end_session


class SessionEndingRoute(APIRoute):
    """An `APIRoute` whose sync endpoint commits and closes its sessions before returning."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = ending_sessions(endpoint)
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
