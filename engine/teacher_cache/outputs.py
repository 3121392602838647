"""Teacher outputs computed once, before training, and shared by every job that asks for the same ones.

The pass runs the frozen teacher in inference mode over the train, eval and test examples, longest
first in large batches, and stores only the fields the method consumes. An entry's key hashes the
teacher's weights, the token ids of every example (so the data files, their order and the tokenisation
settings all count), the fields, the method settings that change their values, and the precision.
Examples are found by the hash of their tokens, so a job that splits the same examples differently
still finds them. Where the outputs would not fit the store's bound, training runs the teacher live; so
it does, unless asked (`training.teacher_cache: on`), where nothing would read them twice: one epoch and
no other job waiting for the same entry.

Over several ranks the pass is split between them (`shared_pass.py`); rank 0 alone looks for, evicts
and writes entries, and the others open the entry once rank 0 says it is there. Given a store shared
between machines (`shared.py`), rank 0 looks there after the local cache and offers it what it computes.
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import torch
from torch import Tensor

from engine.batching import collate
from engine.callbacks import Callbacks
from engine.distributed.ranks import SINGLE, Ranks
from engine.teacher_cache.fields import STORAGE_DTYPES, TeacherFields
from engine.teacher_cache.shared import SharedEntries, fetch_entry, publish_entry, touch_entry
from engine.teacher_cache.shared_pass import Row, compute_shared, pass_rounds
from engine.teacher_cache.store import (
    CorruptEntry,
    EntryWriter,
    StoreEntry,
    describe_field,
    make_room,
    remove_entry,
)

logger = logging.getLogger(__name__)

KEY_VERSION = 1
TEACHER_FILES = ("config.json", "*.safetensors")
PASS_BATCH_TOKENS = 16384
MAX_PASS_BATCH = 512
# The outputs of one pass batch, in float32 and counted twice (models return every layer's attention
# maps or hidden states, not only the mapped ones), stay under this many bytes.
PASS_BATCH_OUTPUT_BYTES = 1024**3
INDEX_BYTES_PER_ROW = 20
ENTRY_OVERHEAD_BYTES = 2048
# In auto mode the pass runs when training reads each train example's outputs this often on average
# (a second epoch), or another job reads the same entry: read once, a stored pass only adds its write.
READS_TO_STORE = 2
FETCHED = "fetched from the shared store"
LOST_RACE = "computed; another machine committed the same entry first, and its copy is used"

CacheMode = Literal["auto", "on", "off"]
Status = Literal["hit", "miss", "live", "off"]
TeacherPassFunction = Callable[[dict[str, Tensor]], dict[str, Tensor]]


@dataclass(frozen=True)
class TeacherCacheConfig:
    """Where entries live and how many bytes they may take together; no root keeps them for one run.

    With `shared`, `root` is this machine's copy of a store that other machines share. `other_readers`:
    jobs besides this one, queued or running, that will read the same entry (so it pays to store it).
    """

    root: Path | None = None
    max_bytes: int = 20 * 1024**3
    shared: SharedEntries | None = None
    other_readers: int = 0


@dataclass
class CacheOutcome:
    """What the job did with its teacher's outputs, for its report and log."""

    status: Status
    reason: str
    key: str | None = None
    bytes: int = 0
    examples: int = 0
    seconds: float = 0.0
    teacher_forwards: int = 0
    # Positions stored over all examples, so that `bytes / tokens` is the entry's cost per token.
    tokens: int = 0

    def message(self) -> str:
        """One log line, e.g. `teacher outputs: cache hit, 12.3 MB for 5000 examples, ...`."""
        size = f"{self.bytes / 1e6:.1f} MB for {self.examples} examples"
        if self.status == "hit":
            where = f", {FETCHED}" if self.reason == FETCHED else ""
            return (
                f"teacher outputs: cache hit ({size}, key {self.key}{where}); "
                "the teacher is not run in training"
            )
        if self.status == "miss":
            return (
                f"teacher outputs: cache miss; computed once in {self.seconds:.1f}s and stored ({size}, "
                f"key {self.key})"
            )
        return f"teacher outputs: the teacher runs on every step ({self.reason})"


@dataclass
class StoredOutputs:
    """An open entry and, per split, the entry row of each of the split's examples."""

    entry: StoreEntry
    rows: dict[str, np.ndarray]

    def lookup(self, split: str) -> Callable[[Tensor, int, torch.device], dict[str, Tensor]]:
        """A function from a batch's example indices in `split` to its right-padded teacher outputs."""
        rows = self.rows[split]

        def targets(indices: Tensor, width: int, device: torch.device) -> dict[str, Tensor]:
            return self.entry.batch(rows[indices.cpu().numpy()].tolist(), width, device)

        return targets


def example_hashes(dataset: datasets.Dataset) -> list[bytes]:
    """A 16-byte hash of each example's token ids (and token type ids, where the model has them)."""
    columns = [dataset["input_ids"]]
    if "token_type_ids" in dataset.column_names:
        columns.append(dataset["token_type_ids"])
    hashes = []
    for parts in zip(*columns, strict=True):
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            digest.update(np.asarray(part, dtype=np.int32).tobytes())
            digest.update(b"|")
        hashes.append(digest.digest())
    return hashes


def teacher_digest(teacher_dir: Path) -> str:
    """sha256 over the teacher's config and weight files, names included."""
    digest = hashlib.sha256()
    files = sorted({path for pattern in TEACHER_FILES for path in teacher_dir.glob(pattern)})
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def cache_key(material: dict[str, Any]) -> str:
    """A 32-hex-digit key for the key material."""
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class PassPlan:
    """The unique examples of every split, their lengths and hashes, and what storing them takes."""

    splits: dict[str, datasets.Dataset]
    hashes: dict[str, list[bytes]]
    unique: dict[bytes, tuple[str, int]]
    lengths: dict[bytes, int]
    fields: TeacherFields

    @classmethod
    def of(cls, splits: dict[str, datasets.Dataset], fields: TeacherFields) -> "PassPlan":
        """Plan a pass over `splits`, each example once however often it occurs."""
        hashes = {name: example_hashes(dataset) for name, dataset in splits.items()}
        unique: dict[bytes, tuple[str, int]] = {}
        lengths: dict[bytes, int] = {}
        for name, dataset in splits.items():
            for index, (example_hash, length) in enumerate(zip(hashes[name], dataset["length"], strict=True)):
                if example_hash not in unique:
                    unique[example_hash] = (name, index)
                    lengths[example_hash] = int(length)
        return cls(splits, hashes, unique, lengths, fields)

    def nbytes(self) -> int:
        """Bytes an entry for every unique example takes: the values, the index and the file headers."""
        values = sum(
            field.nbytes(length) for length in self.lengths.values() for field in self.fields.values()
        )
        return values + INDEX_BYTES_PER_ROW * len(self.unique) + ENTRY_OVERHEAD_BYTES

    def tokens(self) -> int:
        """Token positions an entry for every unique example stores."""
        return sum(self.lengths.values())

    def examples_digest(self) -> str:
        """sha256 of the sorted unique example hashes: the same set gives the same digest in any order."""
        return hashlib.sha256(b"".join(sorted(self.unique))).hexdigest()


@dataclass(frozen=True)
class TeacherPass:
    """What the pass runs and stores: the method's fields and function, the teacher, precision and device."""

    fields: TeacherFields
    settings: dict[str, Any]
    run: TeacherPassFunction
    teacher_dir: Path
    precision: str
    autocast: Callable[[], AbstractContextManager[object]]
    device: torch.device
    pad_token_id: int

    def key_material(self, plan: "PassPlan") -> dict[str, Any]:
        """Everything the stored values depend on."""
        return {
            "version": KEY_VERSION,
            "teacher": teacher_digest(self.teacher_dir),
            "examples": plan.examples_digest(),
            "fields": {name: describe_field(field) for name, field in sorted(self.fields.items())},
            "settings": self.settings,
            "precision": self.precision,
        }


def prepare_teacher_outputs(
    teacher_pass: TeacherPass,
    splits: dict[str, datasets.Dataset],
    *,
    mode: CacheMode,
    config: TeacherCacheConfig,
    scratch_dir: Path,
    planned_visits: int,
    callbacks: Callbacks,
    ranks: Ranks = SINGLE,
) -> tuple[StoredOutputs | None, CacheOutcome]:
    """The teacher's stored outputs for every example of `splits`, found or computed; None to run it live.

    Over several ranks every rank calls it with the same arguments and a shared `scratch_dir`.
    """
    if mode == "off":
        return None, CacheOutcome("off", "training.teacher_cache is off")
    plan = PassPlan.of(splits, teacher_pass.fields)
    root = config.root or scratch_dir / "teacher-cache"
    material = teacher_pass.key_material(plan)
    key = cache_key(material)
    entry, found = (
        _find_entry(root, key, teacher_pass.fields, config, callbacks) if ranks.is_main else (None, "")
    )
    if ranks.broadcast_flag(entry is not None) and entry is None:
        entry = StoreEntry(root / key, teacher_pass.fields)
    if entry is not None:
        outcome = CacheOutcome("hit", found, key, entry.nbytes, len(plan.unique), tokens=plan.tokens())
        return _stored(entry, plan), outcome
    needed, train_examples = plan.nbytes(), len(splits["train"])
    if needed > config.max_bytes:
        bound = f"{needed / 1e6:.0f} MB, over the cache bound of {config.max_bytes / 1e6:.0f} MB"
        return None, CacheOutcome("live", f"its outputs would take {bound}", examples=len(plan.unique))
    if mode == "auto" and config.other_readers == 0 and planned_visits < READS_TO_STORE * train_examples:
        reason = _read_once(planned_visits, train_examples)
        return None, CacheOutcome("live", reason, examples=len(plan.unique))
    if ranks.distributed:
        return _compute_shared_entry(teacher_pass, plan, root, key, material, config, callbacks, ranks)
    return _compute_entry(teacher_pass, plan, root, key, material, config, callbacks)


def _read_once(planned_visits: int, train_examples: int) -> str:
    """Why auto runs the teacher live: no stored output would be read twice."""
    if planned_visits < train_examples:
        return (
            f"training shows the teacher {planned_visits} examples, fewer than one pass over the "
            f"{train_examples} train examples"
        )
    return (
        f"training reads the teacher's outputs {planned_visits} times for {train_examples} train examples, "
        "each about once, and no other queued or running job reads the same ones: a pass stored first "
        "would cost more than it saves"
    )


def _compute_entry(
    teacher_pass: TeacherPass,
    plan: "PassPlan",
    root: Path,
    key: str,
    material: dict[str, Any],
    config: TeacherCacheConfig,
    callbacks: Callbacks,
) -> tuple[StoredOutputs | None, CacheOutcome]:
    """Make room, run the pass and store it; any trouble storing it means a live teacher, not a failure."""
    make_room(root, incoming=plan.nbytes(), max_bytes=config.max_bytes)
    started = time.perf_counter()
    try:
        written, forwards = _compute(plan, root, key, material, teacher_pass, callbacks)
    except _Overflow as error:
        return None, CacheOutcome("live", str(error), examples=len(plan.unique))
    except OSError as error:  # a full or failing disk costs speed, never the job
        logger.warning("teacher cache: could not store the outputs: %s", error)
        reason = f"the outputs could not be stored ({error})"
        return None, CacheOutcome("live", reason, examples=len(plan.unique))
    if written is None:
        return None, CacheOutcome("live", "stopped on request during the pass", examples=len(plan.unique))
    make_room(root, incoming=0, max_bytes=config.max_bytes, keep=written.name)  # with the real size
    reason = _publish(written, config, callbacks)
    entry = StoreEntry(written, plan.fields)
    seconds = time.perf_counter() - started
    outcome = CacheOutcome(
        "miss", reason, key, entry.nbytes, len(plan.unique), seconds, forwards, plan.tokens()
    )
    return _stored(entry, plan), outcome


def _compute_shared_entry(
    teacher_pass: TeacherPass,
    plan: "PassPlan",
    root: Path,
    key: str,
    material: dict[str, Any],
    config: TeacherCacheConfig,
    callbacks: Callbacks,
    ranks: Ranks,
) -> tuple[StoredOutputs | None, CacheOutcome]:
    """The pass split over the ranks; rank 0 makes room and writes; every rank opens the entry."""
    writer = None
    if ranks.is_main:
        make_room(root, incoming=plan.nbytes(), max_bytes=config.max_bytes)
        writer = EntryWriter(root, key, plan.fields, material)
    started = time.perf_counter()
    order = sorted(plan.unique, key=lambda example_hash: -plan.lengths[example_hash])
    callbacks.on_message(f"teacher outputs: computing them once for {len(order)} examples")
    sizes = [pass_batch_size(plan.fields, plan.lengths[example_hash]) for example_hash in order]
    result = compute_shared(
        pass_rounds(order, sizes, ranks.world_size),
        compute_rows=lambda share: _rows(plan, share, teacher_pass),
        writer=writer,
        ranks=ranks,
        callbacks=callbacks,
    )
    examples = len(plan.unique)
    if result.written is None:
        reason = result.failure or "stopped on request during the pass"
        return None, CacheOutcome("live", reason, examples=examples)
    reason = ""
    if ranks.is_main:
        make_room(root, incoming=0, max_bytes=config.max_bytes, keep=result.written.name)
        reason = _publish(result.written, config, callbacks)
    reason = ranks.broadcast_object(reason)  # the other ranks open the entry once rank 0 has settled it
    entry = StoreEntry(result.written, plan.fields)
    seconds = time.perf_counter() - started
    outcome = CacheOutcome(
        "miss", reason, key, entry.nbytes, examples, seconds, result.forwards, plan.tokens()
    )
    return _stored(entry, plan), outcome


def _rows(plan: "PassPlan", share: list[bytes], teacher_pass: TeacherPass) -> list[Row] | str:
    """One rank's pass batch: each example's values cut to its length, in storage dtypes; or the overflow."""
    outputs = _forward(plan, share, teacher_pass)
    rows = []
    try:
        for row, example_hash in enumerate(share):
            length = plan.lengths[example_hash]
            rows.append((example_hash, length, _cut_values(plan, outputs, row, length)))
    except _Overflow as error:
        return str(error)
    return rows


def _cut_values(plan: "PassPlan", outputs: dict[str, Tensor], row: int, length: int) -> dict[str, Tensor]:
    """One example's values of every field, in storage dtype; _Overflow if one does not fit it."""
    values = {}
    for name, field in plan.fields.items():
        value = field.cut(outputs[name], row, length).to("cpu", STORAGE_DTYPES[field.dtype])
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise _Overflow(f"teacher output {name} does not fit in {field.dtype}")
        values[name] = value
    return values


def _find_entry(
    root: Path, key: str, fields: TeacherFields, config: TeacherCacheConfig, callbacks: Callbacks
) -> tuple[StoreEntry | None, str]:
    """The entry of `key` from the local cache, else from the shared store; and where it was found."""
    entry = _open_existing(root / key, fields, callbacks)
    if config.shared is None:
        return entry, "found"
    if entry is not None:
        touch_entry(config.shared, key, callbacks)
        return entry, "found"
    fetched = fetch_entry(config.shared, root, key, callbacks)
    if fetched is None:
        return None, ""
    make_room(root, incoming=0, max_bytes=config.max_bytes, keep=key)
    return _open_existing(fetched, fields, callbacks), FETCHED


def _publish(written: Path, config: TeacherCacheConfig, callbacks: Callbacks) -> str:
    """Offer a computed entry to the shared store, if any; the outcome's reason."""
    if config.shared is None or publish_entry(config.shared, written, callbacks):
        return "computed"
    return LOST_RACE


def _open_existing(path: Path, fields: TeacherFields, callbacks: Callbacks) -> StoreEntry | None:
    if not path.exists():
        return None
    try:
        return StoreEntry(path, fields)
    except CorruptEntry as error:
        callbacks.on_message(
            f"teacher cache entry {path.name} is unreadable ({error}); recomputing it", "warning"
        )
        remove_entry(path)
        return None


def _stored(entry: StoreEntry, plan: PassPlan) -> StoredOutputs:
    rows = {
        name: np.array([entry.rows[example_hash] for example_hash in hashes], dtype=np.int64)
        for name, hashes in plan.hashes.items()
    }
    return StoredOutputs(entry, rows)


class _Overflow(Exception):
    """A teacher output too large for its storage dtype."""


def _compute(
    plan: "PassPlan",
    root: Path,
    key: str,
    material: dict[str, Any],
    teacher_pass: TeacherPass,
    callbacks: Callbacks,
) -> tuple[Path | None, int]:
    """Run the teacher over every unique example, longest first, and write the entry; None if stopped."""
    order = sorted(plan.unique, key=lambda example_hash: -plan.lengths[example_hash])
    callbacks.on_message(f"teacher outputs: computing them once for {len(order)} examples")
    writer = EntryWriter(root, key, plan.fields, material)
    forwards = 0
    try:
        start = 0
        while start < len(order):
            if callbacks.should_stop():
                writer.abort()
                return None, forwards
            size = pass_batch_size(plan.fields, plan.lengths[order[start]])
            chunk = order[start : start + size]
            start += len(chunk)
            outputs = _forward(plan, chunk, teacher_pass)
            forwards += 1
            for row, example_hash in enumerate(chunk):
                length = plan.lengths[example_hash]
                writer.add(example_hash, length, _cut_values(plan, outputs, row, length))
        return writer.commit(), forwards
    except BaseException:
        writer.abort()
        raise


def pass_batch_size(fields: TeacherFields, length: int) -> int:
    """Examples of `length` tokens in one pass batch: many, within a token and an output-memory budget."""
    output_bytes = 2 * 4 * sum(field.numel(length) for field in fields.values())
    return max(1, min(MAX_PASS_BATCH, PASS_BATCH_TOKENS // length, PASS_BATCH_OUTPUT_BYTES // output_bytes))


def _forward(plan: "PassPlan", chunk: list[bytes], teacher_pass: TeacherPass) -> dict[str, Tensor]:
    """The teacher's outputs for one batch of examples, in inference mode."""
    columns = ["input_ids", "attention_mask"]
    rows: dict[str, list[Any]] = {"input_ids": [], "attention_mask": []}
    sources = [plan.unique[example_hash] for example_hash in chunk]
    if "token_type_ids" in plan.splits[sources[0][0]].column_names:
        columns.append("token_type_ids")
        rows["token_type_ids"] = []
    for split, index in sources:
        example = plan.splits[split][index]
        for column in columns:
            rows[column].append(example[column])
    batch = collate({**rows, "labels": [0] * len(chunk)}, pad_token_id=teacher_pass.pad_token_id)
    inputs = {name: value.to(teacher_pass.device) for name, value in batch.items() if name != "labels"}
    with torch.inference_mode(), teacher_pass.autocast():
        return teacher_pass.run(inputs)
