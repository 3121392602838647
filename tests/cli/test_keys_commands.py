"""`distillery keys create | list | revoke` on the service's real database, and what a key may do after."""

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import String, select
from typer.testing import CliRunner

from app.auth.models import ApiKey
from app.auth.rules import TENANT_MAX_CHARS
from app.cli.keys import expiry_from
from app.core.base import Base
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
    until = (datetime.now(UTC) + timedelta(days=5 * 365)).date().isoformat()
    token = keys("create", "--tenant", "acme", "--expires", until).stdout.strip().splitlines()[-1]
    make_client(api_key=token).get("/v1/files")

    listed = keys("list", "--tenant", "acme")

    assert listed.exit_code == 0, listed.output
    assert token not in listed.stdout
    assert token[:10] in listed.stdout
    assert "active" in listed.stdout and until in listed.stdout
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


@pytest.mark.parametrize("text", ["soon", "0d", "2020-01-01", "-5d", "2026-13-01", "5w", "\u0663d"])
def test_expiry_refuses_what_is_not_a_future_moment(text: str) -> None:
    with pytest.raises(CliError):
        expiry_from(text, now=NOW)


def test_expiry_reaches_ten_years_and_no_further() -> None:
    assert expiry_from("3653d", now=NOW) == NOW + timedelta(days=3653)
    for text in ("3654d", "87673h", "99999999999d", "9" * 5000 + "m", "2036-11-30", "9999-12-31T23:59-01:00"):
        with pytest.raises(CliError, match="more than 3653 days"):
            expiry_from(text, now=NOW)


def test_an_out_of_range_expiry_is_one_readable_error_and_creates_no_key(db_session: Any) -> None:
    result = keys("create", "--tenant", "acme", "--expires", "99999999999d")

    assert result.exit_code == 1
    assert "--expires '99999999999d': the expiry is more than 3653 days (ten years)" in result.output
    assert isinstance(result.exception, SystemExit)
    assert db_session.query(ApiKey).count() == 0


@pytest.mark.parametrize(
    "tenant",
    ["", "a" * (TENANT_MAX_CHARS + 1), "two words", "-leading-dash", ".hidden", "a/b", "caf\u00e9", "x\n"],
)
def test_a_tenant_name_outside_the_rule_is_one_readable_error_and_creates_no_key(
    db_session: Any, tenant: str
) -> None:
    result = keys("create", "--tenant", tenant)

    assert result.exit_code == 1, result.output
    assert "Error: --tenant: the tenant name" in result.output
    assert "letters, digits, '-', '_' and '.'" in result.output
    assert isinstance(result.exception, SystemExit)
    assert db_session.query(ApiKey).count() == 0


def test_tenant_names_up_to_the_column_length_with_dots_dashes_and_underscores_are_accepted(
    db_session: Any,
) -> None:
    for tenant in ("a" * TENANT_MAX_CHARS, "Acme-1.prod_eu", "7"):
        assert keys("create", "--tenant", tenant).exit_code == 0
    assert db_session.query(ApiKey).count() == 3


def test_the_tenant_rule_fits_every_tenant_column() -> None:
    lengths = {
        table.name: table.c.tenant.type.length
        for table in Base.metadata.tables.values()
        if "tenant" in table.c and isinstance(table.c.tenant.type, String)
    }
    assert lengths and set(lengths.values()) == {TENANT_MAX_CHARS}, lengths


def stored_ids(db_session: Any, count: int) -> list[str]:
    """Create `count` keys of a long-named tenant and return their ids."""
    from app.auth.service import create_key

    for number in range(count):
        create_key(session=db_session, tenant="tenant-with-a-rather-long-name", name=f"key {number}")
    db_session.commit()
    return sorted(db_session.scalars(select(ApiKey.id)))


def cli_process_env(columns: int) -> dict[str, str]:
    return {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}


def test_a_piped_list_prints_whole_ids_as_tab_separated_lines_that_revoke_accepts(db_session: Any) -> None:
    ids = stored_ids(db_session, 2)

    piped = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "keys", "list"],
        capture_output=True,
        text=True,
        env=cli_process_env(columns=30),
        timeout=60,
    )

    assert piped.returncode == 0, piped.stderr
    header, *lines = piped.stdout.splitlines()
    assert header.split("\t") == [
        "ID",
        "TENANT",
        "NAME",
        "PREFIX",
        "STATE",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "LIMITS",
    ]
    listed = [line.split("\t") for line in lines]
    assert sorted(row[0] for row in listed) == ids
    assert {row[2] for row in listed} == {"key 0", "key 1"}
    assert keys("revoke", listed[0][0]).exit_code == 0


def test_a_list_on_a_narrow_terminal_still_shows_whole_ids(db_session: Any) -> None:
    ids = stored_ids(db_session, 1)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "distillery.cli", "keys", "list"],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=cli_process_env(columns=40),
    )
    os.close(follower)
    output = b""
    try:
        while chunk := os.read(leader, 4096):
            output += chunk
    except OSError:  # the terminal reads as closed once the process has exited
        pass
    finally:
        os.close(leader)
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    text = output.decode()
    assert "\t" not in text and "ID" in text
    assert ids[0] in text


def test_the_json_list_holds_whole_ids_and_iso_times(db_session: Any) -> None:
    ids = stored_ids(db_session, 2)
    keys("revoke", ids[0])

    result = keys("list", "--json")

    assert result.exit_code == 0, result.output
    listed = {key["id"]: key for key in json.loads(result.stdout)}
    assert sorted(listed) == ids
    assert listed[ids[0]]["state"] == "revoked" and listed[ids[1]]["state"] == "active"
    first = listed[ids[0]]
    assert set(first) == {
        "id",
        "tenant",
        "name",
        "prefix",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
        "max_running_jobs",
        "max_running_devices",
    }
    assert first["tenant"] == "tenant-with-a-rather-long-name" and first["expires_at"] is None
    assert datetime.fromisoformat(first["created_at"]).tzinfo is not None
    assert json.loads(keys("list", "--json", "--tenant", "nobody").stdout) == []


def test_a_keys_running_limits_are_set_at_creation_changed_and_listed(db_session: Any) -> None:
    created = keys("create", "--tenant", "acme", "--max-running-jobs", "2")
    assert created.exit_code == 0, created.output
    key = db_session.scalars(select(ApiKey).where(ApiKey.tenant == "acme")).one()
    assert (key.max_running_jobs, key.max_running_devices) == (2, None)

    changed = keys("limit", key.id, "--max-running-devices", "4")

    assert changed.exit_code == 0, changed.output
    db_session.expire_all()
    assert (key.max_running_jobs, key.max_running_devices) == (None, 4)
    listed = json.loads(keys("list", "--json").stdout)
    assert (listed[0]["max_running_jobs"], listed[0]["max_running_devices"]) == (None, 4)
    assert "4 devices" in keys("list").stdout
    assert keys("limit", "key_missing", "--max-running-jobs", "1").exit_code != 0
    assert keys("create", "--tenant", "acme", "--max-running-jobs", "0").exit_code != 0
