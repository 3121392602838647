"""A Postgres server of a test's own, on a free port, that the test may stop and start to cause outages."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from local_ports import free_port

POSTGRES_BIN = Path(os.environ.get("DISTILLERY_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


class ThrowawayPostgres:
    """One `initdb` cluster with trust authentication; `stop()` and `start()` cut and restore it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.port = free_port()

    def init(self) -> None:
        """Create the cluster (about a second)."""
        self._run(POSTGRES_BIN / "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", SERVER_USER)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            POSTGRES_BIN / "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l",
            str(self.directory / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once, closing every client connection, as a crash or a failover would."""
        self._run(POSTGRES_BIN / "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def is_running(self) -> bool:
        """Whether the server process is up."""
        status = subprocess.run(
            self._command(POSTGRES_BIN / "pg_ctl", "-D", str(self.data_dir), "status"), capture_output=True
        )
        return status.returncode == 0

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one of its databases."""
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database; returns its SQLAlchemy URL."""
        admin = f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def _command(self, program: Path, *arguments: str) -> list[str]:
        command = [str(program), *arguments]
        if os.geteuid() == 0:  # the server refuses to run as root
            return ["runuser", "-u", SERVER_USER, "--", *command]
        return command

    def _run(self, program: Path, *arguments: str) -> None:
        result = subprocess.run(self._command(program, *arguments), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{program.name} failed: {result.stdout}{result.stderr}")


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started server, stopped and removed with its files at the end."""
    directory = Path(tempfile.mkdtemp(prefix="distillery-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, user=SERVER_USER, group=SERVER_USER)
    server = ThrowawayPostgres(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.is_running():
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
