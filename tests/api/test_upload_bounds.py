"""Upload checks are bounded: deep nesting, odd column names, too many columns and huge CSV fields are
422 `invalid_file` naming where, never a 500."""

import json
from typing import Any

import pytest

from app.files.validation import MAX_COLUMNS, MAX_JSON_DEPTH


def upload(client: Any, filename: str, content: bytes) -> Any:
    return client.post("/v1/files", files={"file": (filename, content)})


def assert_invalid_file(response: Any, *phrases: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == ("invalid_file", "file", "user")
    for phrase in phrases:
        assert phrase in error["message"]


def test_a_deeply_nested_jsonl_line_is_422_naming_the_line(client: Any, settings: Any) -> None:
    content = b'{"text": "a", "label": 1}\n' + b"[" * 100_000 + b"\n"
    assert_invalid_file(upload(client, "deep.jsonl", content), "line 2", "nests deeper")
    assert not any((settings.artifacts / "files").glob("*/*"))


def test_nesting_within_the_bound_is_accepted(client: Any) -> None:
    value = json.loads("[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1))
    line = json.dumps({"text": "a [ { bracket in text", "label": 1, "extra": value})
    response = upload(client, "ok.jsonl", line.encode() + b"\n")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("filename", "content", "phrase"),
    [
        ("nul.jsonl", b'{"te\\u0000xt": "a", "label": 1}\n', "column name"),
        ("long.jsonl", b'{"' + b"k" * 300 + b'": "a"}\n', "longer than"),
        ("ctl.csv", b"te\x01xt,label\na,1\n", "column name"),
    ],
    ids=["nul-in-jsonl-key", "overlong-jsonl-key", "control-in-csv-header"],
)
def test_a_column_name_a_spec_could_not_name_is_422(
    client: Any, filename: str, content: bytes, phrase: str
) -> None:
    assert_invalid_file(upload(client, filename, content), phrase)


def test_too_many_columns_are_422(client: Any) -> None:
    row = {f"c{index}": index for index in range(MAX_COLUMNS + 1)}
    assert_invalid_file(upload(client, "wide.jsonl", json.dumps(row).encode() + b"\n"), "limit")


def test_a_csv_field_over_the_parser_limit_is_422(client: Any) -> None:
    content = b"text,label\n" + b"x" * 200_000 + b",1\n"
    assert_invalid_file(upload(client, "huge.csv", content), "malformed")
