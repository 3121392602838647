"""The server commands' light parts: start-up cost, the banner, stopping the worker, migrating."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.server import print_banner, stop_process

HEAVY_MODULES = [
    "torch",
    "transformers",
    "celery",
    "fastapi",
    "sqlalchemy",
    "uvicorn",
    "alembic",
    "app",
    "worker",
]


def test_starting_the_cli_imports_none_of_the_service() -> None:
    probe = (
        f"import sys, distillery.cli.main; print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )

    assert found.stdout.strip() == "[]"


def test_the_banner_shows_the_api_its_pages_the_dashboard_and_the_key_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_banner("0.0.0.0", 8123, "dk-dev")

    out = capsys.readouterr().out
    for page in ("/v1", "/ui/", "/docs", "/redoc"):
        assert f"http://127.0.0.1:8123{page}" in out
    assert "export DISTILLERY_URL=http://127.0.0.1:8123 DISTILLERY_API_KEY=dk-dev" in out
    assert out.count("dk-dev") == 1


def test_without_a_development_key_the_banner_says_how_to_create_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_banner("127.0.0.1", 8000, None)

    assert "distillery keys create --tenant NAME" in capsys.readouterr().out


def test_stop_process_ends_a_running_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    stop_process(child)

    assert child.returncode is not None


def test_migrate_from_any_directory_creates_the_schema(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DISTILLERY_")}
    env["DISTILLERY_DATA_DIR"] = str(tmp_path / "state")
    distillery = Path(sys.executable).parent / "distillery"

    result = subprocess.run(
        [str(distillery), "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "state" / "distillery.db") as database:
        tables = {row[0] for row in database.execute("select name from sqlite_master where type = 'table'")}
    assert {"jobs", "files", "api_keys", "alembic_version"} <= tables
