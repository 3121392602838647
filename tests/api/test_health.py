"""Probes: liveness touches nothing; readiness checks the real database and broker."""

from typing import Any

import pytest

from app.api import health


@pytest.fixture(autouse=True)
def patient_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded test machine can take longer than production's 2 s to answer; reachability is what counts."""
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 30.0)


def test_healthz_answers_without_a_key(anonymous_client: Any) -> None:
    response = anonymous_client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_with_postgres_and_redis_up(anonymous_client: Any) -> None:
    response = anonymous_client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_naming_an_unreachable_broker(make_client: Any) -> None:
    response = make_client(broker_url="redis://127.0.0.1:1/0").get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("not_ready", "system")
    assert "broker" in error["message"] and "database" not in error["message"]


def test_readyz_is_503_naming_an_unreachable_database(make_client: Any) -> None:
    response = make_client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/none").get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json()["error"]["message"]
    assert "broker" not in response.json()["error"]["message"]
