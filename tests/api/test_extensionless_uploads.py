"""An upload whose name has no extension: its format is told from its content, or it is a 415 that names
the accepted types."""

from typing import Any

import pytest
from upload_samples import SAMPLE_ROWS, dataset_bytes

ACCEPTED = ".csv, .jsonl, .ndjson, .parquet"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_extensionless_upload_is_sniffed_and_stored_under_its_formats_extension(
    client: Any, settings: Any, fmt: str
) -> None:
    content = dataset_bytes(SAMPLE_ROWS, fmt)

    response = client.post("/v1/files", files={"file": ("file", content)})

    assert response.status_code == 201, response.text
    file = response.json()
    assert (file["format"], file["rows"], file["columns"]) == (fmt, 2, ["text", "label"])
    # Jobs read a dataset by its extension, so the stored name carries the sniffed one.
    assert file["filename"] == f"file.{fmt}"
    assert (settings.artifacts / "files" / file["id"] / f"file.{fmt}").read_bytes() == content


def test_a_sniffed_jsonl_with_a_byte_order_mark_and_leading_blank_lines_is_read(client: Any) -> None:
    content = b'\xef\xbb\xbf\n\n{"text": "a", "label": 1}\n'

    response = client.post("/v1/files", files={"file": ("rows", content)})

    assert response.status_code == 201, response.text
    assert (response.json()["format"], response.json()["rows"]) == ("jsonl", 1)


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"one text column\nno comma anywhere\n", b"", b"\n \n"],
    ids=["image", "single-text-column", "empty", "blank"],
)
def test_an_extensionless_upload_that_cannot_be_sniffed_is_a_415_naming_the_accepted_types(
    client: Any, settings: Any, content: bytes
) -> None:
    response = client.post("/v1/files", files={"file": ("file", content)})

    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == ("unsupported_file_type", "file", "user")
    assert "'file' has no extension" in error["message"] and ACCEPTED in error["message"]
    assert not any((settings.artifacts / "files").glob("*/*"))


def test_a_sniffed_upload_is_still_checked_whole(client: Any) -> None:
    response = client.post("/v1/files", files={"file": ("file", b'{"text": "a"}\n{"text": \n')})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "file"
    assert "not a valid jsonl dataset: line 2" in response.json()["error"]["message"]
