"""API keys: created once in plaintext, stored as SHA-256, resolved to a tenant on each request."""

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ApiKey
from app.core.config import Settings

KEY_PREFIX = "dk-"
DEV_TENANT = "default"
# 30 random bytes are 40 url-safe characters.
KEY_RANDOM_BYTES = 30
SHOWN_PREFIX_CHARS = 10


def hash_key(token: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(*, session: Session, tenant: str, name: str | None = None) -> str:
    """Create a key for a tenant; returns its plaintext, which is never stored and shown only now."""
    token = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    session.add(ApiKey(tenant=tenant, name=name, key_hash=hash_key(token), prefix=token[:SHOWN_PREFIX_CHARS]))
    session.flush()
    return token


def authenticate(*, session: Session, token: str, settings: Settings) -> str | None:
    """The tenant a bearer token belongs to, or None for an unknown or revoked key."""
    dev_key = settings.dev_api_key
    if (
        settings.environment == "development"
        and dev_key
        and hmac.compare_digest(token.encode(), dev_key.encode())
    ):
        return DEV_TENANT
    return session.scalar(
        select(ApiKey.tenant).where(ApiKey.key_hash == hash_key(token), ApiKey.revoked_at.is_(None))
    )
