"""The engine is a plain library: importing it brings in no queue, web or database code."""

import subprocess
import sys


def test_the_engine_imports_neither_celery_nor_the_service() -> None:
    code = (
        "import sys, engine.run;"
        "service = ('celery', 'kombu', 'fastapi', 'sqlalchemy', 'app');"
        "found = sorted(m for m in service if m in sys.modules);"
        "print(', '.join(found)); sys.exit(1 if found else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
