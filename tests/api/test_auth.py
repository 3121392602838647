"""Bearer API keys: who may call, and as which tenant."""

from typing import Any

from app.auth.models import ApiKey
from app.auth.service import authenticate, create_key, hash_key


def test_a_request_without_a_key_is_401_with_a_bearer_challenge(anonymous_client: Any) -> None:
    response = anonymous_client.get("/v1/jobs")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.json()["error"]["type"] == "user"


def test_a_wrong_key_is_401(make_client: Any) -> None:
    response = make_client(api_key="dk-not-a-real-key").get("/v1/files")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_non_bearer_scheme_is_401(anonymous_client: Any, settings: Any) -> None:
    response = anonymous_client.get("/v1/jobs", headers={"Authorization": f"Basic {settings.dev_api_key}"})
    assert response.status_code == 401


def test_a_created_key_is_returned_once_and_stored_only_as_its_hash(db_session: Any, settings: Any) -> None:
    key = create_key(session=db_session, tenant="acme", name="ci")
    assert key.startswith("dk-") and len(key) == 43
    stored = db_session.query(ApiKey).one()
    assert stored.key_hash == hash_key(key) and key not in (stored.key_hash, stored.prefix)
    assert authenticate(session=db_session, token=key, settings=settings) == "acme"
    assert authenticate(session=db_session, token=key + "x", settings=settings) is None


def test_a_revoked_key_is_refused(db_session: Any, make_client: Any) -> None:
    key = create_key(session=db_session, tenant="acme")
    db_session.query(ApiKey).update({ApiKey.revoked_at: ApiKey.created_at})
    db_session.commit()
    assert make_client(api_key=key).get("/v1/jobs").status_code == 401


def test_the_development_key_is_refused_outside_development(db_session: Any, settings: Any) -> None:
    production_like = settings.model_copy(update={"environment": "production"})
    assert authenticate(session=db_session, token=settings.dev_api_key, settings=production_like) is None


def test_a_key_works_for_its_tenant(other_tenant_client: Any) -> None:
    response = other_tenant_client.get("/v1/jobs")
    assert response.status_code == 200
    assert response.json()["data"] == []
