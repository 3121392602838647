"""Safe extraction of the student archive: every member must stay inside the destination."""

import re
import tarfile
from pathlib import Path, PurePosixPath

from distillery.client.errors import UnsafeArchiveError

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def check_member(member: tarfile.TarInfo) -> None:
    """Reject a member that is absolute, climbs out with `..`, or is a link or a device."""
    name = member.name
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the destination")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"archive member {name!r} is not a regular file or directory")


def extract_archive(archive: Path, dest_dir: Path) -> list[str]:
    """Extract a tar archive into dest_dir after checking every member; returns the member names."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member)
        # The stdlib's "data" filter repeats these checks and also drops unsafe permission bits.
        tar.extractall(dest_dir, members=members, filter="data")
    return [member.name for member in members]


def model_directory(dest_dir: Path, member_names: list[str]) -> Path:
    """The extracted directory `from_pretrained` loads: dest_dir, or the archive's single top folder."""
    # PurePosixPath drops "./" prefixes, so "./config.json" counts as top level.
    parts = [p for p in (PurePosixPath(name).parts for name in member_names) if p]
    if ("config.json",) in parts:
        return dest_dir
    tops = {p[0] for p in parts}
    if len(tops) == 1:
        top = dest_dir / tops.pop()
        if top.is_dir():
            return top
    return dest_dir
