"""Dataset uploads: checked on upload, stored under files/<id>/, listed, read and deleted per tenant."""

from typing import Any

import pytest
from upload_samples import SAMPLE_ROWS, dataset_bytes


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_upload_is_parsed_and_its_columns_recorded(client: Any, settings: Any, fmt: str) -> None:
    content = dataset_bytes(SAMPLE_ROWS, fmt)
    response = client.post(
        "/v1/files", files={"file": (f"reviews.{fmt}", content)}, data={"purpose": "train"}
    )
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["object"] == "file" and file["id"].startswith("file_")
    assert (file["format"], file["rows"], file["columns"]) == (fmt, 2, ["text", "label"])
    assert (file["bytes"], file["purpose"], file["filename"]) == (len(content), "train", f"reviews.{fmt}")
    assert isinstance(file["created_at"], int)
    stored = settings.artifacts / "files" / file["id"] / f"reviews.{fmt}"
    assert stored.read_bytes() == content


def test_a_latin1_csv_is_read_with_the_fallback_encoding(client: Any) -> None:
    content = "text,label\ncaf\u00e9 cr\u00e8me,1\n".encode("latin-1")
    response = client.post("/v1/files", files={"file": ("fr.csv", content)})
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 1


def test_jsonl_columns_are_the_union_of_keys_in_order(client: Any) -> None:
    content = b'{"text": "a", "label": 1}\n\n{"text": "b", "label": 0, "source": "web"}\n'
    file = client.post("/v1/files", files={"file": ("d.jsonl", content)}).json()
    assert (file["rows"], file["columns"]) == (2, ["text", "label", "source"])


def test_a_path_in_the_filename_is_stripped(client: Any, settings: Any) -> None:
    response = client.post(
        "/v1/files", files={"file": ("../../etc/my data!.jsonl", dataset_bytes(SAMPLE_ROWS, "jsonl"))}
    )
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["filename"] == "my_data_.jsonl"
    assert (settings.artifacts / "files" / file["id"] / "my_data_.jsonl").is_file()


@pytest.mark.parametrize(
    ("filename", "content", "status"),
    [
        ("data.txt", b"text,label\na,1\n", 415),
        ("picture.png", b"\x89PNG\r\n\x1a\n\x00\x00", 415),
        ("data.jsonl", b'{"text": "a"}\n[1, 2]\n', 422),
        ("data.jsonl", b'{"text": "a"\n', 422),
        ("data.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00", 422),
        ("data.jsonl", b"\n\n", 422),
        ("data.csv", b"text,label\n", 422),
        ("data.csv", b"text,label\na,1,extra\n", 422),
        ("data.parquet", b"text,label\na,1\n", 422),
        ("data.parquet", b"PAR1 but truncated", 422),
    ],
    ids=[
        "unknown-extension",
        "image",
        "jsonl-array-line",
        "jsonl-broken",
        "binary-as-jsonl",
        "jsonl-no-rows",
        "csv-no-rows",
        "csv-ragged",
        "csv-as-parquet",
        "truncated-parquet",
    ],
)
def test_a_bad_upload_is_refused_with_param_file(
    client: Any, settings: Any, filename: str, content: bytes, status: int
) -> None:
    response = client.post("/v1/files", files={"file": (filename, content)})
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == "file"
    assert response.json()["error"]["type"] == "user"
    assert not any((settings.artifacts / "files").glob("*/*"))


def test_a_request_that_is_not_multipart_is_422_on_file(client: Any) -> None:
    response = client.post("/v1/files", json={"file": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "file"


def test_an_upload_over_the_limit_is_413_and_leaves_nothing_behind(make_client: Any, settings: Any) -> None:
    small = make_client(api_key=settings.dev_api_key, max_upload_bytes=1000)
    content = dataset_bytes([{"text": "x" * 100, "label": 1}] * 20, "jsonl")
    response = small.post("/v1/files", files={"file": ("big.jsonl", content)})
    assert response.status_code == 413
    assert response.json()["error"]["param"] == "file"
    assert not any((settings.artifacts / "files").glob("*/*"))
    assert (
        small.post("/v1/files", files={"file": ("ok.jsonl", dataset_bytes(SAMPLE_ROWS, "jsonl"))}).status_code
        == 201
    )


def test_a_declared_length_far_over_the_limit_is_refused_before_reading(
    make_client: Any, settings: Any
) -> None:
    small = make_client(api_key=settings.dev_api_key, max_upload_bytes=1000)
    content = dataset_bytes([{"text": "x" * 1000, "label": 1}] * 200, "jsonl")
    response = small.post("/v1/files", files={"file": ("big.jsonl", content)})
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "file_too_large",
        "message": "the file is larger than the limit of 1000 bytes",
        "param": "file",
        "type": "user",
    }


def test_a_chunked_upload_over_the_limit_is_cut_off_while_streaming(make_client: Any, settings: Any) -> None:
    small = make_client(api_key=settings.dev_api_key, max_upload_bytes=1000)
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'.encode()
        + b'{"text": "x"}\n' * 10_000
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks() -> Any:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = small.post(
        "/v1/files", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["param"] == "file"


def test_files_are_listed_newest_first_and_read_by_id(client: Any, upload_file: Any) -> None:
    first, second = upload_file(client), upload_file(client, fmt="csv")
    page = client.get("/v1/files").json()
    assert [file["id"] for file in page["data"]] == [second["id"], first["id"]]
    assert (page["object"], page["has_more"], page["first_id"], page["last_id"]) == (
        "list",
        False,
        second["id"],
        first["id"],
    )
    assert client.get(f"/v1/files/{first['id']}").json() == first


def test_a_deleted_file_is_gone_from_the_store_and_the_api(
    client: Any, upload_file: Any, settings: Any
) -> None:
    file = upload_file(client)
    response = client.delete(f"/v1/files/{file['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": file["id"], "object": "file", "deleted": True}
    assert client.get(f"/v1/files/{file['id']}").status_code == 404
    assert not (settings.artifacts / "files" / file["id"]).exists()


def test_a_file_used_by_a_queued_job_cannot_be_deleted(client: Any, create_job: Any, job_spec: Any) -> None:
    job = create_job()
    file_id = job_spec["data"]["train_file"]
    response = client.delete(f"/v1/files/{file_id}")
    assert response.status_code == 409
    assert job["id"] in response.json()["error"]["message"]
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert client.delete(f"/v1/files/{file_id}").status_code == 200


def test_an_unknown_file_is_404(client: Any) -> None:
    response = client.get("/v1/files/file_nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
