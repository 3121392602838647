"""Commands that run and administer the service, added to the `distillery` command when it is installed."""

import typer

from app.cli import keys, server
from app.cli.quickstart.command import quickstart


def register(cli: typer.Typer) -> None:
    """Add `api`, `up`, `migrate`, `keys` and `quickstart` to the `distillery` command."""
    cli.command()(server.api)
    cli.command()(server.up)
    cli.command()(server.migrate)
    cli.add_typer(keys.app, name="keys")
    cli.command()(quickstart)
