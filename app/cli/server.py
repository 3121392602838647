"""Commands that run the service: api, up, migrate; each imports what it runs only when run."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Annotated, Any

import typer

from distillery.cli.console import say, stderr, stdout
from distillery.cli.state import CliError

logger = logging.getLogger(__name__)

APP_PATH = "app.main:app"
WORKER_STOP_SECONDS = 15.0
# The processes `up` runs beside the API: `distillery` subcommands, by what they are called in messages.
SERVICE_WORKERS = {
    "worker": ["worker", "--concurrency", "1", "--quiet"],
    "webhook worker": ["webhook-worker", "--quiet"],
}
# The API's own start-up warning that shows the development key: `up`'s banner shows it already.
DEV_KEY_LOGGER = "app.dev_key"
READY_WAIT_SECONDS = 120.0


def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API with uvicorn."""
    import uvicorn

    uvicorn.run(APP_PATH, host=host, port=port)


def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    from app.core.config import get_settings
    from app.main import upgrade_database

    upgrade_database(get_settings())
    stdout().print("Database is up to date.")


def up(
    host: Annotated[str, typer.Option(help="Interface the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the API listens on.")] = 8000,
) -> None:
    """Run the whole service on this machine: migrations, one worker, the webhook sender, and the API."""
    import uvicorn

    from app.core.config import get_settings
    from app.main import upgrade_database

    settings = get_settings()
    upgrade_database(settings)
    # uvicorn re-raises the signal that stopped it once it has shut down, still inside its event loop:
    # a handler that only notes it lets the API end cleanly, then the workers stop, then this exits.
    stopped_by: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: stopped_by.append(number))
    logging.getLogger(DEV_KEY_LOGGER).setLevel(logging.ERROR)
    # Each in its own process group, so stopping the worker reaches the pool process that runs the job too.
    # Webhooks get a light worker of their own: the job worker runs one long job at a time.
    workers = {
        name: subprocess.Popen([sys.executable, "-m", "distillery.cli", *command], start_new_session=True)
        for name, command in SERVICE_WORKERS.items()
    }
    server = uvicorn.Server(uvicorn.Config(APP_PATH, host=host, port=port, log_level="warning"))
    try:
        # Without its workers the service would accept jobs that never run: stop it all instead.
        for name, process in workers.items():
            watcher = threading.Thread(
                target=stop_server_when_exits, args=(process, server, name), daemon=True
            )
            watcher.start()
        banner = threading.Thread(
            target=print_banner_when_ready, args=(server, host, port, settings.dev_api_key), daemon=True
        )
        banner.start()
        server.run()
    finally:
        # Asked to stop together, so their shutdowns overlap.
        for process in workers.values():
            if process.poll() is None:
                send_signal(process, signal.SIGTERM, group=True)
        for name, process in workers.items():
            stop_process(process, group=True, name=name)
    died = getattr(server, "worker_died", None)
    if died is not None:
        code = workers[died].returncode
        raise CliError(f"the {died} exited with code {code}; see its log above")
    say(stderr(), "Distillery stopped.")
    if signal.SIGTERM in stopped_by:
        raise SystemExit(128 + signal.SIGTERM)


def stop_server_when_exits(process: subprocess.Popen[bytes], server: Any, name: str = "worker") -> None:
    """Wait for a worker process; if it ends while the API serves, shut the API down."""
    process.wait()
    if not server.should_exit:
        say(stderr(), f"The {name} exited with code {process.returncode}; stopping the service.")
        server.worker_died = name
        server.should_exit = True


def print_banner_when_ready(server: Any, host: str, port: int, dev_api_key: str | None) -> None:
    """Print the banner once the API answers, after the start-up lines of the API and the workers."""
    deadline = time.monotonic() + READY_WAIT_SECONDS
    while not server.started and not server.should_exit and time.monotonic() < deadline:
        time.sleep(0.1)
    if server.started:
        print_banner(host, port, dev_api_key)


def print_banner(host: str, port: int, dev_api_key: str | None) -> None:
    """Where the service listens: the API, its pages and the dashboard, and how to call it."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    out = stdout()
    say(out, "Distillery is running. Ctrl-C stops it.")
    say(out, f"  API          {url}/v1")
    say(out, f"  Dashboard    {url}/ui/")
    say(out, f"  Swagger UI   {url}/docs")
    say(out, f"  ReDoc        {url}/redoc")
    if dev_api_key:
        say(out, "Call it from a shell with the development key (never use it in production):")
        say(out, f"  export DISTILLERY_URL={url} DISTILLERY_API_KEY={dev_api_key}")
    else:
        say(out, "No API key yet; create one with: distillery keys create --tenant NAME")


def stop_process(process: subprocess.Popen[bytes], *, group: bool = False, name: str = "worker") -> None:
    """Ask a child (with `group`, its whole process group) to stop; kill it after WORKER_STOP_SECONDS."""
    if process.poll() is None:
        say(stderr(), f"Stopping the {name}...")
        send_signal(process, signal.SIGTERM, group=group)
        try:
            process.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            send_signal(process, signal.SIGKILL, group=group)
            process.wait()
    if group:
        # A pool process still running a job outlives its parent's warm shutdown: end it too.
        send_signal(process, signal.SIGKILL, group=True)


def send_signal(process: subprocess.Popen[bytes], signum: int, *, group: bool) -> None:
    """Signal the child, or every process of the group it leads; a group already gone is fine."""
    try:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:
        pass
