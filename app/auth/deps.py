"""Request dependency: the caller's tenant, from the API key its `Authorization` header bears."""

from functools import partial
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import CHALLENGE, SettingsDep
from app.api.errors import ApiError
from app.auth.service import KeyGrant, resolve_key
from app.core.config import Settings

bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key, sent as `Authorization: Bearer dk-...`."
)


async def get_tenant(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The tenant of the request's bearer key; 401 without a valid one.

    The key is looked up in a short session of its own, closed in the same thread: the connection is
    back in the pool before the handler waits for a thread, so a burst of requests cannot leave every
    thread waiting for a connection that a request queued for a thread holds.
    """
    if credentials is None:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers=CHALLENGE,
        )
    grant = await anyio.to_thread.run_sync(
        partial(_resolve_key, request.app.state.read_sessionmaker, credentials.credentials, settings)
    )
    if grant is None:
        raise ApiError(401, "the API key is invalid or revoked", code="invalid_api_key", headers=CHALLENGE)
    request.state.key_grant = grant
    return grant.tenant


def _resolve_key(sessions: sessionmaker[Session], token: str, settings: Settings) -> KeyGrant | None:
    """The key's grant, from a session opened and closed here."""
    with sessions() as session:
        return resolve_key(session=session, token=token, settings=settings)


TenantDep = Annotated[str, Depends(get_tenant)]
