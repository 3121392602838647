"""Small datasets written as JSONL, CSV or Parquet bytes, for upload tests."""

import csv
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SAMPLE_ROWS = [{"text": "a fine film", "label": 1}, {"text": "a dull film", "label": 0}]


def dataset_bytes(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """Rows written as a JSONL, CSV or Parquet file."""
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return text.getvalue().encode()
    if fmt == "parquet":
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt}")
