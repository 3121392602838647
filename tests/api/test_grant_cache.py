"""Cached key grants: reused for a while, never past expiry, and the job read still refuses a dead key."""

import time
from datetime import timedelta
from typing import Any

from app.auth.grant_cache import GrantCache
from app.auth.models import ApiKey
from app.auth.service import KeyGrant, create_key, revoke_key
from app.core.base import utcnow


def test_a_resolved_key_is_reused_until_its_time_is_up() -> None:
    cache = GrantCache(ttl_seconds=0.05)
    cache.put("h1", KeyGrant("acme", key_id="k1"))
    assert cache.get("h1") == KeyGrant("acme", key_id="k1")
    assert cache.get("h2") is None
    time.sleep(0.06)
    assert cache.get("h1") is None


def test_a_grant_is_never_reused_past_its_keys_expiry() -> None:
    cache = GrantCache(ttl_seconds=60)
    cache.put("h1", KeyGrant("acme", key_id="k1", expires_at=utcnow() + timedelta(milliseconds=50)))
    assert cache.get("h1") is not None
    time.sleep(0.06)
    assert cache.get("h1") is None


def read_twice_then(make_client: Any, db_session: Any, end_key: Any) -> tuple[Any, str]:
    """A key of `acme` that read one of its jobs twice (the second time from the cache), then was ended."""
    key = create_key(session=db_session, tenant="acme")
    db_session.commit()
    client = make_client(api_key=key)
    job_id = "job_0123456789abcdef01234567"
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    end_key(db_session, db_session.query(ApiKey).one())
    db_session.commit()
    return client, job_id


def test_a_job_read_with_a_cached_key_is_refused_from_the_request_after_its_revocation(
    make_client: Any, db_session: Any
) -> None:
    client, job_id = read_twice_then(
        make_client, db_session, lambda session, key: revoke_key(session=session, key_id=key.id)
    )
    answer = client.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_a_job_read_with_a_cached_key_is_refused_once_the_key_is_deleted(
    make_client: Any, db_session: Any
) -> None:
    client, job_id = read_twice_then(make_client, db_session, lambda session, key: session.delete(key))
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401


def test_a_job_read_with_a_cached_key_is_refused_once_the_key_has_expired(
    make_client: Any, db_session: Any
) -> None:
    def expire(session: Any, key: ApiKey) -> None:
        key.expires_at = utcnow() - timedelta(seconds=1)

    client, job_id = read_twice_then(make_client, db_session, expire)
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401
