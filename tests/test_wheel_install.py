"""The built wheel works outside the source tree: it migrates a new database and serves the API."""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_LEFTOVERS = (
    ".git",
    ".venv",
    "var",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "results",
)
PROBE = """
import app, app.main
from fastapi.testclient import TestClient
from app.jobs.endpoints import JOB_EXAMPLES
client = TestClient(app.main.create_app())
print(app.__file__)
print(",".join(sorted(JOB_EXAMPLES)))
pages = ("/ui/", "/ui/dashboard.js", "/docs", "/docs-static/swagger-ui-init.js")
print(",".join(str(client.get(page).status_code) for page in pages))
"""

pytestmark = pytest.mark.slow


def run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **options)  # type: ignore[call-overload]
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_wheel_migrates_a_new_database_and_builds_the_api_outside_the_repository(tmp_path: Path) -> None:
    # Built from a copy, so the build leaves nothing in the source tree.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    dist = tmp_path / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(source),
        ]
    )
    (wheel,) = (tmp_path / "dist").glob("distillery-*.whl")
    venv.create(tmp_path / "env", with_pip=False)
    python = tmp_path / "env" / "bin" / "python"
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ]
    )
    # The dependencies come from this environment's site-packages, added as a plain path: its editable
    # install of the source tree is not loaded, so `app` can only come from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("DISTILLERY_", "PYTHON"))
    }
    env["DISTILLERY_DATA_DIR"] = str(outside / "state")

    run([str(python), "-m", "distillery.cli", "migrate"], cwd=outside, env=env)
    probe = run([str(python), "-c", PROBE], cwd=outside, env=env).stdout.splitlines()

    assert Path(probe[0]).is_relative_to(site)
    assert "response" in probe[1].split(",")
    assert probe[2] == "200,200,200,200"  # the dashboard's and the docs pages' files are package data
    assert (outside / "state" / "distillery.db").is_file()
