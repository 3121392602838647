"""Request dependencies: the caller's tenant, from the API key its `Authorization` header bears."""

from functools import partial
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import CHALLENGE, SettingsDep
from app.api.errors import ApiError
from app.auth.grant_cache import GrantCache
from app.auth.service import KeyGrant, KeyRefused, hash_key, resolve_key
from app.core.config import Settings

bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key, sent as `Authorization: Bearer dk-...`."
)
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


# KeyRefused is passed on: a route taking a `CachedGrantDep` catches it from its key-checking query and
# answers `invalid_key()`.
__all__ = ["CachedGrantDep", "KeyRefused", "TenantDep", "get_cached_grant", "get_tenant", "invalid_key"]


def invalid_key() -> ApiError:
    """The 401 of a key that is unknown, revoked or expired."""
    return ApiError(401, "the API key is invalid or revoked", code="invalid_api_key", headers=CHALLENGE)


async def get_tenant(request: Request, settings: SettingsDep, credentials: CredentialsDep) -> str:
    """The tenant of the request's bearer key; 401 without a valid one.

    The key is looked up in a short session of its own, closed in the same thread: the connection is
    back in the pool before the handler waits for a thread, so a burst of requests cannot leave every
    thread waiting for a connection that a request queued for a thread holds.
    """
    grant = await _looked_up(request, settings, _token(credentials))
    return grant.tenant


async def get_cached_grant(request: Request, settings: SettingsDep, credentials: CredentialsDep) -> KeyGrant:
    """The grant of the request's bearer key, from the app's `GrantCache` when it was resolved lately.

    Only for a route whose own query re-checks that the key is live (`app.jobs.reads`): a cached grant
    says who the key speaks for, not that it still may.
    """
    token = _token(credentials)
    grants: GrantCache = request.app.state.grants
    key_hash = hash_key(token)
    grant = grants.get(key_hash)
    if grant is None:
        grant = await _looked_up(request, settings, token)
        grants.put(key_hash, grant)
    request.state.key_grant = grant
    return grant


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The bearer token; 401 when the request has none."""
    if credentials is None:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers=CHALLENGE,
        )
    return credentials.credentials


async def _looked_up(request: Request, settings: Settings, token: str) -> KeyGrant:
    """The token's grant, read in a thread from the database now; 401 for an invalid key."""
    grant = await anyio.to_thread.run_sync(
        partial(_resolve_key, request.app.state.read_sessionmaker, token, settings)
    )
    if grant is None:
        raise invalid_key()
    request.state.key_grant = grant
    return grant


def _resolve_key(sessions: sessionmaker[Session], token: str, settings: Settings) -> KeyGrant | None:
    """The key's grant, from a session opened and closed here."""
    with sessions() as session:
        return resolve_key(session=session, token=token, settings=settings)


TenantDep = Annotated[str, Depends(get_tenant)]
CachedGrantDep = Annotated[KeyGrant, Depends(get_cached_grant)]
