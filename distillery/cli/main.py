"""The `distillery` command: global options, the command list, and readable errors."""

import importlib
import importlib.util
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from distillery.cli import events, files, jobs, sweeps
from distillery.cli.console import print_error
from distillery.cli.state import CliError, CliState
from distillery.client import DistilleryError

# The commands that run the service, and the module of each (only where the service is installed).
SERVICE_COMMANDS = {
    "api": "app.cli",
    "up": "app.cli",
    "migrate": "app.cli",
    "keys": "app.cli",
    "quickstart": "app.cli",
    "worker": "worker.cli",
    "webhook-worker": "worker.cli",
}


def installed(module: str) -> bool:
    """Whether a module's top-level package is installed beside the client (found without importing it)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None


class ReadableErrorsGroup(TyperGroup):
    """Turns the client's and the CLI's own errors into one red line and exit code 1, no traceback.

    The service's commands are loaded from `app.cli` only when one of them is asked for (or listed),
    so the client's commands start without importing the service.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return names + [
            name for name, module in SERVICE_COMMANDS.items() if installed(module) and name not in names
        ]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        module = SERVICE_COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands and installed(module):
            service = typer.Typer()
            importlib.import_module(module).register(service)
            for name, command in typer.main.get_group(service).commands.items():
                self.add_command(command, name)
        return super().get_command(ctx, cmd_name)

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
app.add_typer(sweeps.app, name="sweep")


def main() -> None:
    """Entry point of the `distillery` console script."""
    app(prog_name="distillery")


if __name__ == "__main__":
    main()
