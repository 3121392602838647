"""The `distillery` command: global options, the command list, and readable errors."""

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from distillery.cli import events, files, jobs, keys, server
from distillery.cli.console import print_error
from distillery.cli.state import CliError, CliState
from distillery.client import DistilleryError


class ReadableErrorsGroup(TyperGroup):
    """Turns the client's and the CLI's own errors into one red line and exit code 1, no traceback."""

    # Any, because typer's own click Context is private to it.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (DistilleryError, CliError) as exc:
            print_error(str(exc))
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=ReadableErrorsGroup,
    help="Distillery: turn a big model into a small one by knowledge distillation.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def configure(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="DISTILLERY_URL", help="The API's base URL.", show_default=False),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="DISTILLERY_API_KEY", help="Bearer API key.", show_default=False),
    ] = None,
) -> None:
    """Keep the global options for the command that runs."""
    state = ctx.ensure_object(CliState)
    state.url = url or state.url
    state.api_key = api_key or state.api_key


app.command()(jobs.submit)
app.command("jobs")(jobs.list_jobs)
app.command()(jobs.show)
app.command()(events.events)
app.command()(jobs.cancel)
app.command()(jobs.download)
app.add_typer(files.app, name="files")
app.command()(server.api)
app.command()(server.worker)
app.command()(server.up)
app.command()(server.migrate)
app.add_typer(keys.app, name="keys")


def main() -> None:
    """Entry point of the `distillery` console script."""
    app(prog_name="distillery")


if __name__ == "__main__":
    main()
