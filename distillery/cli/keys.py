"""`distillery keys`: API keys, created directly in the service's database."""

from typing import Annotated

import typer

from distillery.cli.console import say, stderr, stdout

app = typer.Typer(
    help="Manage API keys (run where the service's database is reachable).", no_args_is_help=True
)


@app.command()
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts for.")],
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise the key by.")] = None,
) -> None:
    """Create an API key and print it; it is shown this once only."""
    from app.auth.service import create_key
    from app.core.db import session_scope

    with session_scope() as session:
        key = create_key(session=session, tenant=tenant, name=name)
    say(stderr(), f"API key for tenant {tenant} (store it now: it cannot be shown again):")
    # The key alone on standard output, so `KEY=$(distillery keys create ...)` captures just it.
    say(stdout(), key)
