"""A spec's `data.*_file` given as a local path: uploaded, and replaced by the uploaded file's id."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillery.cli.state import CliError

FILE_ID_PREFIX = "file_"


@dataclass(frozen=True)
class Upload:
    """One local file a spec named: the field, the path, and the file object the API answered."""

    field: str
    path: Path
    file: dict[str, Any]


def upload_local_files(spec: dict[str, Any], upload: Callable[[Path], dict[str, Any]]) -> list[Upload]:
    """Upload each `data.*_file` that is a local path rather than a file id, and put the id in its place.

    A path is read from the current directory; one file named twice is uploaded once.
    """
    data = spec.get("data")
    if not isinstance(data, dict):
        return []
    uploads: list[Upload] = []
    done: dict[Path, dict[str, Any]] = {}
    for key, value in data.items():
        if not key.endswith("_file") or not isinstance(value, str) or value.startswith(FILE_ID_PREFIX):
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            raise CliError(
                f"data.{key}: '{value}' is neither a file id ({FILE_ID_PREFIX}...) nor a file here "
                "(run `distillery quickstart` for the tweets the examples read)"
            )
        resolved = path.resolve()
        if resolved not in done:
            done[resolved] = upload(path)
        data[key] = done[resolved]["id"]
        uploads.append(Upload(f"data.{key}", path, done[resolved]))
    return uploads
