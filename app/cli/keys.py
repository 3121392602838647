"""`distillery keys`: API keys, managed directly in the service's database."""

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from app.auth.rules import (
    MAX_KEY_LIFETIME,
    TENANT_RULE,
    TOO_LATE,
    InvalidKeyField,
    check_expiry,
    check_key_name,
    check_tenant,
)
from distillery.cli.console import say, stderr, stdout
from distillery.cli.state import CliError

app = typer.Typer(
    help="Manage API keys (run where the service's database is reachable).", no_args_is_help=True
)
DURATION = re.compile(r"([0-9]+)([dhm])")
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60}
# More digits than any allowed lifetime has, even in minutes: refused before int() reads them.
MAX_DURATION_DIGITS = 12
# The width a wrapped NAME column keeps when the terminal is too narrow for the whole table.
NAME_MIN_WIDTH = 12
TABLE_COLUMN_GAP = 2
PLAIN_SEPARATOR = "\t"
SHOWN_VALUE_CHARS = 40


def expiry_from(expires_in: str | None, now: datetime | None = None) -> datetime | None:
    """`90d`, `12h`, `30m` from now, an ISO date or time (UTC unless it says otherwise), or None.

    The moment must be in the future and at most MAX_KEY_LIFETIME (ten years) away.
    """
    if expires_in is None:
        return None
    now = now or datetime.now(UTC)
    text = expires_in.strip()
    try:
        return check_expiry(_moment(text, now), now)
    except InvalidKeyField as error:
        raise CliError(f"--expires '{_shown(text)}': {error}") from None


def _moment(text: str, now: datetime) -> datetime:
    """The moment a duration or an ISO date stands for; CliError when it is neither, InvalidKeyField when
    a duration is longer than any key may live."""
    match = DURATION.fullmatch(text)
    if match:
        digits, unit = match.groups()
        seconds = int(digits) * UNIT_SECONDS[unit] if len(digits) <= MAX_DURATION_DIGITS else None
        if seconds == 0:
            raise CliError("--expires must be a positive duration")
        if seconds is None or seconds > MAX_KEY_LIFETIME.total_seconds():
            raise InvalidKeyField("expires", TOO_LATE)
        return now + timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        shown = _shown(text)
        raise CliError(f"--expires '{shown}' is neither a duration (90d, 12h, 30m) nor an ISO date") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _shown(text: str) -> str:
    """A value as an error message quotes it: whole unless it is long."""
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def key_name(name: str) -> str:
    """A --name value short enough to store; CliError otherwise."""
    try:
        return check_key_name(name)
    except InvalidKeyField as error:
        raise CliError(f"--name: {error}") from None


def tenant_name(tenant: str) -> str:
    """A --tenant value that follows the tenant rule (see app.auth.rules); CliError otherwise."""
    try:
        return check_tenant(tenant)
    except InvalidKeyField as error:
        raise CliError(f"--tenant: {error}") from None


MaxJobs = Annotated[
    int | None,
    typer.Option(
        "--max-running-jobs",
        min=1,
        help="Most jobs the tenant runs at once (default: DISTILLERY_TENANT_MAX_RUNNING_JOBS).",
    ),
]
MaxDevices = Annotated[
    int | None,
    typer.Option(
        "--max-running-devices",
        min=1,
        help="Most devices the tenant's running jobs hold (default: DISTILLERY_TENANT_MAX_RUNNING_DEVICES).",
    ),
]


@app.command()
def create(
    tenant: Annotated[str, typer.Option("--tenant", help=f"The tenant the key acts for: {TENANT_RULE}.")],
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise the key by.")] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When the key stops working: 90d, 12h, 30m, or an ISO date; at most ten years ahead.",
        ),
    ] = None,
    max_running_jobs: MaxJobs = None,
    max_running_devices: MaxDevices = None,
) -> None:
    """Create an API key and print it; it is shown this once only."""
    from app.auth.service import RunningLimits, create_key
    from app.core.db import session_scope

    tenant = tenant_name(tenant)
    if name is not None:
        key_name(name)
    expires_at = expiry_from(expires)
    limits = RunningLimits(jobs=max_running_jobs, devices=max_running_devices)
    with session_scope() as session:
        key = create_key(session=session, tenant=tenant, name=name, expires_at=expires_at, limits=limits)
    until = f", valid until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    say(stderr(), f"API key for tenant {tenant}{until} (store it now: it cannot be shown again):")
    # The key alone on standard output, so `KEY=$(distillery keys create ...)` captures just it.
    say(stdout(), key)


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array, one object per key.")] = False,
) -> None:
    """List the keys: id, tenant, name, prefix, state, expiry and last use (never the keys themselves).

    A table on a terminal; tab-separated lines with a header when the output is piped or redirected.
    Ids are always printed whole, so any of them can be passed to `revoke`.
    """
    from app.auth.service import list_keys as stored_keys
    from app.core.db import session_scope

    if tenant is not None:
        tenant_name(tenant)
    with session_scope() as session:
        rows = [key_row(key) for key in stored_keys(session=session, tenant=tenant)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        say(stderr(), "No API keys" + (f" for tenant {tenant}." if tenant else "."))
    elif sys.stdout.isatty():
        print_table(rows)
    else:
        for line in plain_lines(rows):
            typer.echo(line)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id, key_...")]) -> None:
    """Revoke a key: its next request answers 401."""
    from app.auth.service import UnknownKey, revoke_key
    from app.core.db import session_scope

    try:
        with session_scope() as session:
            key = revoke_key(session=session, key_id=key_id)
            tenant = key.tenant
    except UnknownKey:
        raise CliError(f"no API key '{key_id}' exists (distillery keys list shows them)") from None
    say(stderr(), f"Revoked {key_id} of tenant {tenant}.")


@app.command()
def limit(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id, key_...")],
    max_running_jobs: MaxJobs = None,
    max_running_devices: MaxDevices = None,
) -> None:
    """Set how much the key's tenant may run at once; an option left out goes back to the default.

    A tenant with several keys gets the tightest limit any of its live keys sets.
    """
    from app.auth.service import RunningLimits, UnknownKey, set_limits
    from app.core.db import session_scope

    try:
        with session_scope() as session:
            limits = RunningLimits(jobs=max_running_jobs, devices=max_running_devices)
            tenant = set_limits(session=session, key_id=key_id, limits=limits).tenant
    except UnknownKey:
        raise CliError(f"no API key '{key_id}' exists (distillery keys list shows them)") from None
    shown = ", ".join(
        f"{what} {value if value is not None else 'default'}"
        for what, value in (("running jobs", max_running_jobs), ("running devices", max_running_devices))
    )
    say(stderr(), f"Limits of {key_id} (tenant {tenant}): {shown}.")


def key_row(key: Any) -> dict[str, Any]:
    """What the listing shows of a stored key, times in ISO 8601 UTC."""
    from app.auth.service import key_state

    return {
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "prefix": key.prefix,
        "state": key_state(key),
        "created_at": _iso(key.created_at),
        "expires_at": _iso(key.expires_at),
        "last_used_at": _iso(key.last_used_at),
        "max_running_jobs": key.max_running_jobs,
        "max_running_devices": key.max_running_devices,
    }


def shown_row(row: dict[str, Any]) -> dict[str, str]:
    """A key's row as a table or a line shows it: headed by column, times to the minute, '-' for none."""
    cells = {
        name: value for name, value in row.items() if not name.endswith("_at") and not name.startswith("max_")
    }
    cells["name"] = " ".join((row["name"] or "").split())
    cells["prefix"] = f"{row['prefix']}..."
    for column in ("created", "expires", "last_used"):
        moment = row[f"{column}_at"]
        cells[column.replace("_", " ")] = moment[:16].replace("T", " ") if moment else "-"
    limits = [(row.get("max_running_jobs"), "jobs"), (row.get("max_running_devices"), "devices")]
    cells["limits"] = ", ".join(f"{value} {what}" for value, what in limits if value) or "-"
    return {name: value or "" for name, value in cells.items()}


def plain_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A header line, then one tab-separated line per key, nothing cut."""
    shown = [shown_row(row) for row in rows]
    header = PLAIN_SEPARATOR.join(column.upper() for column in shown[0])
    return [header] + [PLAIN_SEPARATOR.join(row.values()) for row in shown]


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table on the terminal; narrower than the table, the lines run on rather than cut an id."""
    shown = [shown_row(row) for row in rows]
    console = stdout()
    needed = sum(
        max(len(column), *(len(row[column]) for row in shown)) if column != "name" else NAME_MIN_WIDTH
        for column in shown[0]
    ) + TABLE_COLUMN_GAP * (len(shown[0]) - 1)
    if needed > console.width:
        console = Console(highlight=False, width=needed)
    console.print(keys_table(shown))


def keys_table(rows: list[dict[str, str]]) -> Table:
    """A table with one row per key; only the name wraps."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in rows[0]:
        table.add_column(column.upper(), no_wrap=column != "name", overflow="fold")
    for row in rows:
        # Text, not markup: a key's name is shown as typed.
        table.add_row(*(Text(value) for value in row.values()))
    return table


def _iso(moment: datetime | None) -> str | None:
    """SQLite returns naive timestamps; they are UTC."""
    if moment is None:
        return None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()
