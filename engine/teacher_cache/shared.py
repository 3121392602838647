"""Entries shared between machines: a store behind each machine's local cache of teacher outputs.

The engine defines only what it asks of such a store (`SharedEntries`); the worker implements it on the
artifact store. Lookups go: the local entry, then the store's committed one (copied into the local
cache), then the pass, whose entry is offered to the store. Trouble with the store never fails a job:
the local cache carries on alone.
"""

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from engine.callbacks import Callbacks
from engine.teacher_cache.store import TEMPORARY_PREFIX, remove_entry

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SharedEntries(Protocol):
    """Finished entries, as folders of files, kept where every machine finds them."""

    def fetch(self, key: str, into: Path) -> bool:
        """Copy the committed entry `key` into the empty folder `into`, checked; False when there is none."""

    def publish(self, key: str, folder: Path) -> bool:
        """Offer a finished entry; False when another writer's entry of `key` was committed first."""

    def touch(self, key: str) -> None:
        """Record a use of `key`, for the store's least-recently-used order."""


def fetch_entry(shared: SharedEntries, root: Path, key: str, callbacks: Callbacks) -> Path | None:
    """The store's committed entry `key` copied to `root/key`; None when there is none to use."""
    staging = _staging(root, key)
    try:
        if not _quietly(lambda: shared.fetch(key, staging), False, f"fetching entry {key}", callbacks):
            return None
        with contextlib.suppress(OSError):  # another job on this machine placed the same entry first
            os.rename(staging, root / key)
        return root / key
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_entry(shared: SharedEntries, written: Path, callbacks: Callbacks) -> bool:
    """Offer a computed entry; where another writer's was committed first, theirs replaces it here.

    Returns whether this entry is the one the store keeps (or the store could not be asked).
    """
    key, root = written.name, written.parent
    if _quietly(lambda: shared.publish(key, written), True, f"publishing entry {key}", callbacks):
        return True
    staging = _staging(root, key)
    try:
        if _quietly(lambda: shared.fetch(key, staging), False, f"fetching entry {key}", callbacks):
            # Every job then trains on the same targets, whichever machine computed them.
            remove_entry(written)
            with contextlib.suppress(OSError):  # another job on this machine placed one meanwhile
                os.rename(staging, written)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return False


def touch_entry(shared: SharedEntries, key: str, callbacks: Callbacks) -> None:
    """Record a use of `key` in the store."""
    _quietly(lambda: shared.touch(key), None, f"recording a use of entry {key}", callbacks)


def _staging(root: Path, key: str) -> Path:
    """An empty temporary folder beside the entries (cleared by `make_room` if left behind)."""
    staging = root / f"{TEMPORARY_PREFIX}{key}-fetch-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    return staging


def _quietly(call: Callable[[], T], fallback: T, what: str, callbacks: Callbacks) -> T:
    """`call()`, or `fallback` with a warning in the job's log when the store fails in any way."""
    try:
        return call()
    except Exception as error:  # the store is an optimisation: no failure of it may fail the job
        logger.warning("teacher cache: %s in the shared store failed: %s", what, error)
        callbacks.on_message(
            f"teacher cache: {what} in the shared store failed ({error}); going on without it", "warning"
        )
        return fallback
