"""`distillery keys`: API keys, managed directly in the service's database."""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from distillery.cli.console import say, stderr, stdout
from distillery.cli.state import CliError

app = typer.Typer(
    help="Manage API keys (run where the service's database is reachable).", no_args_is_help=True
)
DURATION = re.compile(r"^(\d+)([dhm])$")
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60}


def expiry_from(expires_in: str | None, now: datetime | None = None) -> datetime | None:
    """`90d`, `12h`, `30m` from now, an ISO date or time (UTC unless it says otherwise), or None."""
    if expires_in is None:
        return None
    now = now or datetime.now(UTC)
    text = expires_in.strip()
    match = DURATION.match(text)
    if match:
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        if seconds <= 0:
            raise CliError("--expires must be a positive duration")
        return now + timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--expires '{text}' is neither a duration (90d, 12h, 30m) nor an ISO date") from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if moment <= now:
        raise CliError(f"--expires '{text}' is in the past")
    return moment


@app.command()
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts for.")],
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise the key by.")] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="When the key stops working: 90d, 12h, 30m, or an ISO date."),
    ] = None,
) -> None:
    """Create an API key and print it; it is shown this once only."""
    from app.auth.service import create_key
    from app.core.db import session_scope

    expires_at = expiry_from(expires)
    with session_scope() as session:
        key = create_key(session=session, tenant=tenant, name=name, expires_at=expires_at)
    until = f", valid until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    say(stderr(), f"API key for tenant {tenant}{until} (store it now: it cannot be shown again):")
    # The key alone on standard output, so `KEY=$(distillery keys create ...)` captures just it.
    say(stdout(), key)


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
) -> None:
    """List the keys: id, tenant, name, prefix, state, expiry and last use (never the keys themselves)."""
    from app.auth.service import key_state
    from app.auth.service import list_keys as stored_keys
    from app.core.db import session_scope

    with session_scope() as session:
        rows = [
            {
                "id": key.id,
                "tenant": key.tenant,
                "name": key.name or "",
                "prefix": key.prefix + "...",
                "state": key_state(key),
                "created": _when(key.created_at),
                "expires": _when(key.expires_at),
                "last used": _when(key.last_used_at),
            }
            for key in stored_keys(session=session, tenant=tenant)
        ]
    if not rows:
        say(stderr(), "No API keys" + (f" for tenant {tenant}." if tenant else "."))
        return
    stdout().print(keys_table(rows))


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


def keys_table(rows: list[dict[str, Any]]) -> Table:
    """A table with one row per key."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in rows[0]:
        table.add_column(column.upper(), no_wrap=column != "name", overflow="fold")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    return table


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
