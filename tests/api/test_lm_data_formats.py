"""Causal-LM data: chat and prompt/completion rows checked on upload, and a job's format against its file."""

from typing import Any

import pytest
from upload_samples import dataset_bytes

CHAT: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "user", "content": "count from two"},
            {"role": "assistant", "content": "two three"},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "you count"},
            {"role": "user", "content": "count from five"},
            {"role": "assistant", "content": "five six", "weight": 0},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "five six seven"},
        ]
    },
]
PAIRS = [{"prompt": "one two", "completion": " three"}, {"prompt": "six", "completion": " seven eight"}]


def upload(client: Any, rows: list[dict[str, Any]], fmt: str = "jsonl") -> Any:
    return client.post("/v1/files", files={"file": (f"chat.{fmt}", dataset_bytes(rows, fmt))})


def chat_with(message: Any) -> dict[str, Any]:
    """A chat whose second message is `message`."""
    return {"messages": [{"role": "user", "content": "hi"}, message]}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_chat_and_prompt_completion_files_are_accepted(client: Any, fmt: str) -> None:
    chat = upload(client, CHAT, fmt)
    assert chat.status_code == 201, chat.text
    assert (chat.json()["rows"], chat.json()["columns"]) == (2, ["messages"])
    pairs = upload(client, PAIRS, fmt)
    assert pairs.status_code == 201, pairs.text
    assert pairs.json()["columns"] == ["prompt", "completion"]


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        ([CHAT[0], chat_with({"role": "assistant", "content": 5})], "row 2, field messages[1].content"),
        ([CHAT[0], chat_with({"role": "robot", "content": "x"})], "row 2, field messages[1].role"),
        ([CHAT[0], chat_with("just text")], "row 2, field messages[1]"),
        ([CHAT[0], {"messages": []}], "row 2, field messages"),
        ([CHAT[0], chat_with({"role": "user", "content": "no answer"})], "row 2, field messages"),
        (
            [CHAT[0], chat_with({"role": "assistant", "content": "x", "weight": 2})],
            "field messages[1].weight",
        ),
        ([CHAT[0], {"text": "plain"}], "row 2, field messages"),
        ([{"text": "plain"}, CHAT[0]], "row 2, field messages"),
        ([PAIRS[0], {"prompt": "a", "completion": None}], "row 2, field completion"),
        ([PAIRS[0], {"prompt": "a"}], "row 2, field completion"),
    ],
    ids=[
        "content-not-text",
        "unknown-role",
        "message-not-object",
        "no-messages",
        "no-assistant-turn",
        "bad-weight",
        "chat-then-text",
        "text-then-chat",
        "null-completion",
        "missing-completion",
    ],
)
def test_a_bad_row_is_422_naming_the_row_and_the_field(
    client: Any, settings: Any, rows: list[dict[str, Any]], where: str
) -> None:
    response = upload(client, rows)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"], error["code"]) == ("file", "user", "invalid_file")
    assert where in error["message"], error["message"]
    assert not any((settings.artifacts / "files").glob("*/*"))


def test_a_bad_chat_row_in_parquet_is_422_naming_the_row(client: Any) -> None:
    rows = [CHAT[0], chat_with({"role": "user", "content": "no answer"})]
    response = upload(client, rows, "parquet")
    assert response.status_code == 422, response.text
    assert "row 2, field messages" in response.json()["error"]["message"]


def lm_job(spec: dict[str, Any], file_id: str, **data: Any) -> dict[str, Any]:
    return {**spec, "task": "causal_lm", "data": {"train_file": file_id, **data}}


@pytest.mark.parametrize("fmt", ["auto", "chat"])
def test_a_chat_job_needs_no_text_column(client: Any, job_spec: dict[str, Any], fmt: str) -> None:
    file = upload(client, CHAT).json()
    response = client.post("/v1/jobs", json=lm_job(job_spec, file["id"], format=fmt, loss_on="all"))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["data"]["format"] == fmt


def test_a_prompt_completion_job_is_accepted_and_a_missing_column_named(
    client: Any, job_spec: dict[str, Any]
) -> None:
    file = upload(client, PAIRS).json()
    assert client.post("/v1/jobs", json=lm_job(job_spec, file["id"])).status_code == 201
    response = client.post("/v1/jobs", json=lm_job(job_spec, file["id"], completion_column="answer"))
    error = response.json()["error"]
    assert (response.status_code, error["param"], error["code"]) == (
        422,
        "data.completion_column",
        "column_not_found",
    )


def test_a_chat_format_on_a_file_of_texts_is_422_on_the_messages_column(
    client: Any, job_spec: dict[str, Any]
) -> None:
    response = client.post("/v1/jobs", json=lm_job(job_spec, job_spec["data"]["train_file"], format="chat"))
    assert (response.status_code, response.json()["error"]["param"]) == (422, "data.messages_column")


def test_a_chat_format_on_a_csv_is_422_on_the_format(client: Any, job_spec: dict[str, Any]) -> None:
    file = upload(client, [{"messages": "not a list", "text": "x"}], "csv").json()
    response = client.post("/v1/jobs", json=lm_job(job_spec, file["id"], format="chat"))
    assert (response.status_code, response.json()["error"]["param"]) == (422, "data.format")


@pytest.mark.parametrize("fmt", ["chat", "prompt_completion"])
def test_an_lm_format_on_a_classification_job_is_422_on_the_format(
    client: Any, job_spec: dict[str, Any], fmt: str
) -> None:
    spec = {**job_spec, "data": {**job_spec["data"], "format": fmt}}
    response = client.post("/v1/jobs", json=spec)
    assert (response.status_code, response.json()["error"]["param"]) == (422, "data.format")


def test_an_unknown_format_is_422_on_the_format(client: Any, job_spec: dict[str, Any]) -> None:
    response = client.post(
        "/v1/jobs", json=lm_job(job_spec, job_spec["data"]["train_file"], format="sharegpt")
    )
    assert (response.status_code, response.json()["error"]["param"]) == (422, "data.format")
