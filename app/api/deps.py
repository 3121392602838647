"""Request dependencies: settings, the artifact store, a transactional session and the caller's tenant."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.api.errors import ApiError
from app.auth.service import authenticate
from app.core.config import Settings
from app.core.storage import ArtifactStore

CHALLENGE = {"WWW-Authenticate": "Bearer"}
bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key, sent as `Authorization: Bearer dk-...`."
)


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_store(settings: SettingsDep) -> ArtifactStore:
    """The artifact store shared with the workers."""
    return ArtifactStore(settings.artifacts)


StoreDep = Annotated[ArtifactStore, Depends(get_store)]


def get_session(request: Request) -> Iterator[Session]:
    """A session whose transaction commits when the handler succeeds and rolls back when it raises."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# "function" scope: the commit happens before the response is sent, so a 2xx means the change is stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_tenant(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The tenant of the request's bearer key; 401 without a valid one."""
    if credentials is None:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers=CHALLENGE,
        )
    tenant = authenticate(session=session, token=credentials.credentials, settings=settings)
    if tenant is None:
        raise ApiError(401, "the API key is invalid or revoked", code="invalid_api_key", headers=CHALLENGE)
    return tenant


TenantDep = Annotated[str, Depends(get_tenant)]
