"""API keys: created once in plaintext, stored as SHA-256, resolved to a tenant on each request."""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.auth.models import ApiKey
from app.auth.rules import check_key_name, check_tenant
from app.core.base import utcnow
from app.core.config import Settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "dk-"
DEV_TENANT = "default"
# 30 random bytes are 40 url-safe characters.
KEY_RANDOM_BYTES = 30
SHOWN_PREFIX_CHARS = 10
# `last_used_at` is written at most this often per key, so a busy key costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class UnknownKey(LookupError):
    """No key has this id (or the id names a key of another tenant)."""


def hash_key(token: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class RunningLimits:
    """How much a key's tenant may run at once; None: the service's default."""

    jobs: int | None = None
    devices: int | None = None


def create_key(
    *,
    session: Session,
    tenant: str,
    name: str | None = None,
    expires_at: datetime | None = None,
    limits: RunningLimits = RunningLimits(),
) -> str:
    """Create a key for a tenant; returns its plaintext, which is never stored and shown only now.

    Raises InvalidKeyField for a tenant name or label that breaks the rules of `app.auth.rules`.
    """
    check_tenant(tenant)
    if name is not None:
        check_key_name(name)
    token = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    session.add(
        ApiKey(
            tenant=tenant,
            name=name,
            key_hash=hash_key(token),
            prefix=token[:SHOWN_PREFIX_CHARS],
            expires_at=expires_at,
            max_running_jobs=limits.jobs,
            max_running_devices=limits.devices,
        )
    )
    session.flush()
    return token


def list_keys(*, session: Session, tenant: str | None = None) -> list[ApiKey]:
    """Every key, or a tenant's, oldest first."""
    statement = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        statement = statement.where(ApiKey.tenant == tenant)
    return list(session.scalars(statement))


def revoke_key(*, session: Session, key_id: str) -> ApiKey:
    """Revoke a key by id; revoking a revoked key keeps its first revocation time."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise UnknownKey(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def set_limits(*, session: Session, key_id: str, limits: RunningLimits) -> ApiKey:
    """Set how much the key's tenant may run at once (None: the service's default)."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise UnknownKey(key_id)
    key.max_running_jobs, key.max_running_devices = limits.jobs, limits.devices
    session.flush()
    return key


def key_state(key: ApiKey, now: datetime | None = None) -> str:
    """`active`, `revoked` or `expired`."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and _aware(key.expires_at) <= (now or utcnow()):
        return "expired"
    return "active"


@dataclass(frozen=True)
class KeyGrant:
    """Who a bearer key speaks for: its tenant, and which key it is (None for the development key)."""

    tenant: str
    key_id: str | None = None
    expires_at: datetime | None = None


def authenticate(*, session: Session, token: str, settings: Settings) -> str | None:
    """The tenant a bearer token belongs to, or None for an unknown, revoked or expired key."""
    grant = resolve_key(session=session, token=token, settings=settings)
    return grant.tenant if grant is not None else None


def resolve_key(*, session: Session, token: str, settings: Settings) -> KeyGrant | None:
    """The grant of a bearer token, or None for an unknown, revoked or expired key.

    Give it a short session of its own: the occasional `last_used_at` write goes through it, and a
    read-only (autocommit) session commits that write at once, so no request holds the key's row.
    """
    dev_key = settings.dev_api_key
    if (
        settings.environment == "development"
        and dev_key
        and hmac.compare_digest(token.encode(), dev_key.encode())
    ):
        return KeyGrant(DEV_TENANT)
    now = utcnow()
    row = session.execute(
        select(ApiKey.id, ApiKey.tenant, ApiKey.last_used_at, ApiKey.expires_at).where(
            ApiKey.key_hash == hash_key(token),
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    ).first()
    if row is None:
        return None
    if row.last_used_at is None or _aware(row.last_used_at) < now - LAST_USED_RESOLUTION:
        _touch(session, key_id=row.id, now=now)
    expires_at = _aware(row.expires_at) if row.expires_at is not None else None
    return KeyGrant(str(row.tenant), key_id=str(row.id), expires_at=expires_at)


class KeyRefused(LookupError):
    """A key that a query re-checking it found revoked, deleted or expired."""


def live_key(key_id: ColumnElement[str]) -> ColumnElement[bool]:
    """SQL that is true when `key_id` names a stored key, unrevoked and unexpired, or is null (the
    development key, which is not stored): for a query that re-checks a cached grant's key."""
    return or_(
        key_id.is_(None),
        exists().where(
            ApiKey.id == key_id,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()),
        ),
    )


def key_is_active(*, session: Session, key_id: str, now: datetime | None = None) -> bool:
    """Whether a key still exists, unrevoked and unexpired."""
    key = session.execute(select(ApiKey.revoked_at, ApiKey.expires_at).where(ApiKey.id == key_id)).first()
    if key is None or key.revoked_at is not None:
        return False
    return key.expires_at is None or _aware(key.expires_at) > (now or utcnow())


def _touch(session: Session, *, key_id: str, now: datetime) -> None:
    """Record a key's use; only when the last record is older than the resolution, so once a minute."""
    try:
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
            )
            .values(last_used_at=now)
        )
    except SQLAlchemyError:
        # Bookkeeping only: the request was authenticated either way.
        logger.warning("could not record the use of key %s", key_id)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive timestamps; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def tenant_limits(*, session: Session, tenants: set[str]) -> dict[str, tuple[int | None, int | None]]:
    """The tightest running-jobs and running-devices limits the tenants' live keys set (None: unset)."""
    if not tenants:
        return {}
    rows = session.execute(
        select(ApiKey.tenant, ApiKey.max_running_jobs, ApiKey.max_running_devices).where(
            ApiKey.tenant.in_(tenants),
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.max_running_jobs.is_not(None), ApiKey.max_running_devices.is_not(None)),
        )
    )
    limits: dict[str, tuple[int | None, int | None]] = {}
    for tenant, jobs, devices in rows:
        old_jobs, old_devices = limits.get(tenant, (None, None))
        limits[tenant] = (_tightest(old_jobs, jobs), _tightest(old_devices, devices))
    return limits


def _tightest(first: int | None, second: int | None) -> int | None:
    return second if first is None else first if second is None else min(first, second)
