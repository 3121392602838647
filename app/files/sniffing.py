"""A dataset's format told from its first bytes, for an upload whose name has no extension."""

from app.files.validation import PARQUET_MAGIC, DatasetFormat

# Enough for a header row or a first JSON object of any reasonable width.
SNIFF_BYTES = 64 * 1024


def sniff_format(head: bytes) -> DatasetFormat | None:
    """Parquet by its magic bytes; JSON Lines when the first line opens an object; CSV when the first line
    holds a comma; None for anything else (binary, empty, or a single text column)."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if b"\x00" in head:
        return None
    # The sample may end inside a multi-byte character: decode leniently, only the first line counts.
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    if "," in first:
        return "csv"
    return None
