"""Checking an uploaded dataset: its format from the extension, then its content by parsing it whole."""

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from distillery.jobspec.data_format import (
    COMPLETION_COLUMN,
    MESSAGES_COLUMN,
    PROMPT_COLUMN,
    ResolvedFormat,
    chat_problem,
    detect_format,
    prompt_completion_problem,
)
from distillery.jobspec.text import FORBIDDEN_CHARACTERS, MAX_COLUMN_CHARS

DatasetFormat = Literal["jsonl", "csv", "parquet"]
FORMAT_BY_EXTENSION: dict[str, DatasetFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}
PARQUET_MAGIC = b"PAR1"
# A row is a flat record of texts and labels; a little nesting is tolerated, deep nesting is refused
# before it can exhaust the parser's stack.
MAX_JSON_DEPTH = 32
MAX_COLUMNS = 1024
# Strings (skipped whole, escapes included) and the brackets outside them.
JSON_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
PARQUET_ROW_BATCH = 1024


class UnsupportedFormat(ValueError):
    """The file's extension names no dataset format the service reads."""


class InvalidDataset(ValueError):
    """The content does not parse as the declared format, or holds no rows."""


@dataclass(frozen=True)
class DatasetSummary:
    """What the upload check learned about a dataset."""

    rows: int
    columns: list[str]
    encoding: str | None = None


def format_of(filename: str) -> DatasetFormat:
    """The format a filename declares; raises UnsupportedFormat otherwise."""
    fmt = FORMAT_BY_EXTENSION.get(Path(filename).suffix.lower())
    if fmt is None:
        accepted = ", ".join(sorted(FORMAT_BY_EXTENSION))
        raise UnsupportedFormat(f"'{filename}' is not a supported dataset; use one of {accepted}")
    return fmt


def inspect_dataset(path: Path, fmt: DatasetFormat) -> DatasetSummary:
    """Parse a stored dataset whole; raises InvalidDataset when it is malformed or empty."""
    summary = {"jsonl": _inspect_jsonl, "csv": _inspect_csv, "parquet": _inspect_parquet}[fmt](path)
    if summary.rows == 0:
        raise InvalidDataset("the file holds no rows")
    if not summary.columns:
        raise InvalidDataset("the file holds no columns")
    if len(summary.columns) > MAX_COLUMNS:
        raise InvalidDataset(f"the file has {len(summary.columns)} columns; the limit is {MAX_COLUMNS}")
    for name in summary.columns:
        _check_column_name(name)
    return summary


def _check_column_name(name: str) -> None:
    """Column names are named again in job specs, so they obey the same rules as the spec's texts."""
    if len(name) > MAX_COLUMN_CHARS:
        raise InvalidDataset(f"a column name is longer than {MAX_COLUMN_CHARS} characters: {name[:40]!r}...")
    if FORBIDDEN_CHARACTERS.search(name):
        raise InvalidDataset(f"the column name {name!r} holds a control character or an invalid code point")


class LanguageModelRows:
    """Checks that the rows of a file hold one causal-LM format, chat or prompt/completion, and hold it well.

    The first row sets the format (see `detect_format`); plain text and other tables are not checked.
    """

    def __init__(self) -> None:
        self.format: ResolvedFormat | None = None

    def check(self, record: dict[str, Any], *, row: int, line: int | None = None) -> None:
        """Raise InvalidDataset naming the row and the field of a row that breaks its file's format."""
        found = detect_format(record)
        if self.format is None:
            self.format = found
        where = f"row {row}" if line in (None, row) else f"row {row} (line {line})"
        if found != self.format:
            field, mismatch = _format_break(self.format, found, record)
            raise InvalidDataset(f"{where}, field {field}: {mismatch}; a file holds one format")
        problem = None
        if found == "chat":
            problem = chat_problem(record[MESSAGES_COLUMN])
        elif found == "prompt_completion":
            problem = prompt_completion_problem(record, PROMPT_COLUMN, COMPLETION_COLUMN)
        if problem is not None:
            raise InvalidDataset(f"{where}, field {problem[0]}: {problem[1]}")


def _format_break(first: ResolvedFormat, found: ResolvedFormat, record: dict[str, Any]) -> tuple[str, str]:
    """The field and the words for a row whose format is not the first row's."""
    names = {"chat": "a chat", "prompt_completion": "a prompt/completion pair"}
    if first == "text":
        field = MESSAGES_COLUMN if found == "chat" else PROMPT_COLUMN
        return field, f"this row is {names[found]} but row 1 is not"
    if first == "chat":
        return MESSAGES_COLUMN, f"missing, while row 1 is {names[first]}"
    field = PROMPT_COLUMN if PROMPT_COLUMN not in record else COMPLETION_COLUMN
    return field, f"missing, while row 1 is {names[first]}"


def _inspect_jsonl(path: Path) -> DatasetSummary:
    """Every non-blank line must be a JSON object; columns are the keys in order of first appearance.

    Rows of chat messages or prompt/completion pairs are checked as such (`LanguageModelRows`).
    """
    columns: dict[str, None] = {}
    rows = 0
    lm_rows = LanguageModelRows()
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            if _is_binary(raw) and number == 1:
                raise InvalidDataset("the file is binary, not JSON Lines")
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError as error:
                raise InvalidDataset(f"line {number} is not valid UTF-8") from error
            if not line:
                continue
            if _nesting_depth(line) > MAX_JSON_DEPTH:
                raise InvalidDataset(f"line {number} nests deeper than {MAX_JSON_DEPTH} levels")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InvalidDataset(f"line {number} is not valid JSON: {error.msg}") from error
            if not isinstance(record, dict):
                raise InvalidDataset(f"line {number} is a JSON {type(record).__name__}, not an object")
            columns.update(dict.fromkeys(record))
            if len(columns) > MAX_COLUMNS:
                raise InvalidDataset(f"line {number} brings the columns past the limit of {MAX_COLUMNS}")
            rows += 1
            lm_rows.check(record, row=rows, line=number)
    return DatasetSummary(rows=rows, columns=list(columns))


def _inspect_csv(path: Path) -> DatasetSummary:
    """A header row and data rows; UTF-8, or Latin-1 when the file is not UTF-8."""
    with path.open("rb") as stream:
        if _is_binary(stream.read(4096)):
            raise InvalidDataset("the file is binary, not CSV")
    try:
        return _read_csv(path, "utf-8-sig")
    except UnicodeDecodeError:
        return _read_csv(path, "latin-1")


def _read_csv(path: Path, encoding: str) -> DatasetSummary:
    with path.open(encoding=encoding, newline="") as stream:
        reader = csv.reader(stream)
        try:
            header = next(reader, None)
            if header is None or not any(name.strip() for name in header):
                raise InvalidDataset("the CSV has no header row")
            if len(set(header)) != len(header):
                raise InvalidDataset("the CSV header repeats a column name")
            rows = 0
            for row in reader:
                if not row:
                    continue
                if len(row) > len(header):
                    raise InvalidDataset(
                        f"row {reader.line_num} has {len(row)} fields but the header has {len(header)}"
                    )
                rows += 1
        except csv.Error as error:
            raise InvalidDataset(f"the CSV is malformed near line {reader.line_num}: {error}") from error
    return DatasetSummary(
        rows=rows, columns=header, encoding="utf-8" if encoding == "utf-8-sig" else encoding
    )


def _inspect_parquet(path: Path) -> DatasetSummary:
    """Row count and column names from the Parquet footer, after checking the file's magic bytes."""
    with path.open("rb") as stream:
        head = stream.read(len(PARQUET_MAGIC))
    if head != PARQUET_MAGIC:
        raise InvalidDataset("the file is not Parquet")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise InvalidDataset(f"the Parquet file cannot be read: {error}") from error
    columns = list(parquet.schema_arrow.names)
    fmt = detect_format(columns)
    if fmt != "text":
        _check_parquet_rows(parquet, fmt)
    return DatasetSummary(rows=parquet.metadata.num_rows, columns=columns)


def _check_parquet_rows(parquet: pq.ParquetFile, fmt: ResolvedFormat) -> None:
    """Check the chat or prompt/completion columns of every row, a batch of rows at a time."""
    columns = [MESSAGES_COLUMN] if fmt == "chat" else [PROMPT_COLUMN, COMPLETION_COLUMN]
    lm_rows, row = LanguageModelRows(), 0
    try:
        for batch in parquet.iter_batches(columns=columns, batch_size=PARQUET_ROW_BATCH):
            for record in batch.to_pylist():
                row += 1
                lm_rows.check(record, row=row)
    except (pa.ArrowException, OSError) as error:
        raise InvalidDataset(f"the Parquet file cannot be read: {error}") from error


def _nesting_depth(line: str) -> int:
    """The deepest bracket nesting of a JSON text, brackets inside strings excepted.

    Rows are nearly always flat, so a line without a nested opener costs one scan; only nested lines are
    walked token by token.
    """
    if line.count("{") + line.count("[") <= 1:
        return line.count("{") + line.count("[")
    depth = deepest = 0
    for token in JSON_STRUCTURE.finditer(line):
        text = token.group()
        if text in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif text in "}]":
            depth -= 1
    return deepest


def _is_binary(sample: bytes) -> bool:
    """Text datasets never hold NUL bytes; binary files nearly always do."""
    return b"\x00" in sample or sample.startswith(PARQUET_MAGIC)
