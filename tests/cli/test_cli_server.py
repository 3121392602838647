"""The server commands' light parts: start-up cost, the banner, stopping the worker, finding alembic.ini."""

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.server import find_alembic_ini, print_banner, stop_process

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


def test_the_banner_shows_the_url_the_docs_and_the_development_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_banner("0.0.0.0", 8123, "dk-dev")

    out = capsys.readouterr().out
    assert "http://127.0.0.1:8123" in out
    assert "http://127.0.0.1:8123/docs" in out
    assert "export DISTILLERY_URL=http://127.0.0.1:8123 DISTILLERY_API_KEY=dk-dev" in out


def test_without_a_development_key_the_banner_says_how_to_create_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_banner("127.0.0.1", 8000, None)

    assert "distillery keys create --tenant NAME" in capsys.readouterr().out


def test_stop_process_ends_a_running_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    stop_process(child)

    assert child.returncode is not None


def test_alembic_ini_is_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    ini = find_alembic_ini()

    assert ini is not None
    assert ini.name == "alembic.ini"
    assert (ini.parent / "migrations").is_dir()
