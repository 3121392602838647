"""`distillery keys create | list | revoke` on the service's real database, and what a key may do after."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from app.auth.models import ApiKey
from app.cli.keys import expiry_from
from distillery.cli.main import app
from distillery.cli.state import CliError

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def keys(*args: str) -> Any:
    return CliRunner().invoke(app, ["keys", *args], env={"COLUMNS": "200"})


def test_a_created_key_works_until_it_is_revoked_and_is_refused_from_the_next_request(
    make_client: Any, db_session: Any
) -> None:
    created = keys("create", "--tenant", "acme", "--name", "ci", "--expires", "30d")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    client = make_client(api_key=token)
    assert client.get("/v1/jobs").status_code == 200

    key_id = db_session.query(ApiKey.id).filter(ApiKey.tenant == "acme").scalar()
    revoked = keys("revoke", key_id)

    assert revoked.exit_code == 0, revoked.output
    assert client.get("/v1/jobs").status_code == 401


def test_the_list_shows_state_expiry_and_last_use_but_never_the_key(
    make_client: Any, db_session: Any
) -> None:
    token = keys("create", "--tenant", "acme", "--expires", "2099-01-01").stdout.strip().splitlines()[-1]
    make_client(api_key=token).get("/v1/files")

    listed = keys("list", "--tenant", "acme")

    assert listed.exit_code == 0, listed.output
    assert token not in listed.stdout
    assert token[:10] in listed.stdout
    assert "active" in listed.stdout and "2099-01-01" in listed.stdout
    last_used = db_session.query(ApiKey.last_used_at).scalar()
    assert last_used is not None


def test_an_expired_key_is_refused(make_client: Any, db_session: Any) -> None:
    from app.auth.service import create_key

    key = create_key(session=db_session, tenant="acme", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    db_session.commit()

    response = make_client(api_key=key).get("/v1/jobs")

    assert response.status_code == 401
    assert "expired" in keys("list").stdout


def test_last_use_is_written_at_most_once_a_minute(make_client: Any, db_session: Any) -> None:
    from app.auth.service import create_key

    key = create_key(session=db_session, tenant="acme")
    db_session.commit()
    client = make_client(api_key=key)
    client.get("/v1/jobs")
    first = db_session.query(ApiKey.last_used_at).scalar()
    client.get("/v1/jobs")
    db_session.expire_all()

    assert first is not None
    assert db_session.query(ApiKey.last_used_at).scalar() == first


def test_revoking_an_unknown_key_is_one_readable_error(db_session: Any) -> None:
    result = keys("revoke", "key_nope")

    assert result.exit_code == 1
    assert "no API key 'key_nope'" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", NOW + timedelta(days=90)),
        ("12h", NOW + timedelta(hours=12)),
        ("30m", NOW + timedelta(minutes=30)),
        ("2027-01-01", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2027-01-01T08:00:00+02:00", datetime(2027, 1, 1, 6, tzinfo=UTC)),
    ],
)
def test_expiry_reads_durations_and_dates(text: str, expected: datetime) -> None:
    assert expiry_from(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["soon", "0d", "2020-01-01", "-5d"])
def test_expiry_refuses_what_is_not_a_future_moment(text: str) -> None:
    with pytest.raises(CliError):
        expiry_from(text, now=NOW)
