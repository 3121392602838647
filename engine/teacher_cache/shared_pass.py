"""The teacher pass split over the ranks of a group: each computes its share, rank 0 writes the entry.

Rounds are fixed in advance from the plan, which every rank builds alike: in each round rank r runs the
teacher on every world_size-th example of the round's examples, the cut values go to rank 0
(`gather_object`), and rank 0 adds them to the entry in the single-process order. Rank 0 alone writes
(temporary directory, then commit), so the store keeps its rules. A failure (an overflowing value, a
disk error) or a cancel is decided on rank 0 and broadcast at the next round, so every rank leaves the
loop together and no rank raises while others wait in a collective.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.callbacks import Callbacks
from engine.distributed.ranks import Ranks
from engine.teacher_cache.store import EntryWriter

# One example's stored values, or the reason they cannot be stored.
Row = tuple[bytes, int, dict[str, Any]]


@dataclass
class SharedPassResult:
    """How the pass ended, on every rank: the committed entry, or why there is none."""

    written: Path | None
    forwards: int
    failure: str | None = None
    stopped: bool = False


def pass_rounds(order: list[bytes], sizes: list[int], world_size: int) -> list[list[bytes]]:
    """The examples of each round: `world_size` pass batches of the size the longest example allows."""
    rounds, start = [], 0
    while start < len(order):
        count = sizes[start] * world_size
        rounds.append(order[start : start + count])
        start += count
    return rounds


def compute_shared(
    rounds: list[list[bytes]],
    *,
    compute_rows: Callable[[list[bytes]], list[Row] | str],
    writer: EntryWriter | None,
    ranks: Ranks,
    callbacks: Callbacks,
) -> SharedPassResult:
    """Run every round; `compute_rows(examples)` gives this rank's rows, or why they cannot be stored.

    `writer` is rank 0's (None elsewhere). Every rank returns the same result.
    """
    failure: str | None = None
    forwards = 0
    for examples in rounds:
        stopped = callbacks.should_stop()  # a collective: rank 0's answer
        failure = ranks.broadcast_object(failure)
        if stopped or failure is not None:
            break
        share = examples[ranks.rank :: ranks.world_size]
        rows: list[Row] | str = []
        if share:
            forwards += 1
            rows = compute_rows(share)
        parts = ranks.gather_to_main([rows])
        if writer is not None and failure is None:
            failure = _add_round(writer, [part[0] for part in parts])
    else:
        stopped = False
    return _finish(writer, failure, stopped, ranks.sum([float(forwards)])[0], ranks)


def _add_round(writer: EntryWriter, parts: list[list[Row] | str]) -> str | None:
    """Add one round's rows to the entry in the single-process order; the failure, if any."""
    problems = [part for part in parts if isinstance(part, str)]
    if problems:
        return problems[0]
    shares = [part for part in parts if not isinstance(part, str)]
    try:
        for index in range(max(len(share) for share in shares)):
            for share in shares:
                if index < len(share):
                    writer.add(*share[index])
    except OSError as error:
        return f"the outputs could not be stored ({error})"
    return None


def _finish(
    writer: EntryWriter | None, failure: str | None, stopped: bool, forwards: float, ranks: Ranks
) -> SharedPassResult:
    """Rank 0 commits the entry (or drops it); every rank learns the outcome."""
    written: Path | None = None
    if writer is not None:
        if failure is None and not stopped:
            try:
                written = writer.commit()
            except OSError as error:
                failure = f"the outputs could not be stored ({error})"
        if written is None:
            writer.abort()
    written, failure = ranks.broadcast_object((written, failure))
    return SharedPassResult(written, int(forwards), failure, stopped)
