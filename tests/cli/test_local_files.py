"""`distillery submit` uploads the local files a spec names; `files upload` prints a bare id when piped."""

from pathlib import Path

import httpx
import pytest
from cli_fake_api import FakeApi, json_body, make_job
from typer.testing import CliRunner

from distillery.cli.main import app
from distillery.cli.state import CliState


def run(api: FakeApi, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, list(args), obj=CliState(client=api.client()), env={"COLUMNS": "200", **(env or {})}
    )
    return result.exit_code, result.stdout, result.stderr


def uploaded_as(ids: list[str]) -> object:
    def answer(request: httpx.Request, _match: object) -> httpx.Response:
        return httpx.Response(201, json={"id": ids.pop(0), "object": "file", "filename": "x", "rows": 2})

    return answer


def test_submit_uploads_each_local_data_file_once_and_sends_the_ids(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    Path("test.jsonl").write_text('{"text": "b", "label": "y"}\n')
    Path("job.yaml").write_text(
        "teacher: {path: teacher}\nmethod: {type: response}\n"
        "data: {train_file: train.jsonl, eval_file: train.jsonl, test_file: test.jsonl, "
        "transfer_file: file_kept}\n"
    )
    api.route("POST", "/v1/files", uploaded_as(["file_train", "file_test"]))  # type: ignore[arg-type]
    api.route("POST", "/v1/jobs", lambda _r, _m: httpx.Response(201, json=make_job("job_new")))

    code, out, err = run(api, "submit", "job.yaml")

    assert code == 0, err
    assert [request.url.path for request in api.requests] == ["/v1/files", "/v1/files", "/v1/jobs"]
    assert json_body(api.requests[-1])["data"] == {
        "train_file": "file_train",
        "eval_file": "file_train",
        "test_file": "file_test",
        "transfer_file": "file_kept",
    }
    assert "Uploaded train.jsonl as file_train for data.train_file" in err
    assert "Uploaded test.jsonl as file_test for data.test_file" in err
    assert "Created job job_new" in out


def test_submit_names_a_data_file_that_is_neither_an_id_nor_a_file(api: FakeApi, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("data: {train_file: missing.jsonl}\n")

    code, _, err = run(api, "submit", str(spec))

    assert code == 1
    assert "data.train_file: 'missing.jsonl' is neither a file id (file_...) nor a file here" in err
    assert api.requests == []


def test_files_upload_prints_the_id_alone_when_piped_or_quiet_and_a_sentence_on_a_terminal(
    api: FakeApi, tmp_path: Path
) -> None:
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"text": "a", "label": "x"}\n')
    api.route("POST", "/v1/files", {"id": "file_1", "filename": "train.jsonl", "rows": 1})

    piped = run(api, "files", "upload", str(dataset))
    quiet = run(api, "files", "upload", "-q", str(dataset), env={"FORCE_COLOR": "1"})
    terminal = run(api, "files", "upload", str(dataset), env={"FORCE_COLOR": "1"})

    assert piped[:2] == (0, "file_1\n")
    assert quiet[:2] == (0, "file_1\n")
    assert "Uploaded train.jsonl, 1 rows: file_1" in terminal[1]


def test_sweep_submit_uploads_the_local_files_of_its_base_job(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    Path("sweep.yaml").write_text(
        "base: {teacher: {path: teacher}, method: {type: response}, "
        "data: {train_file: train.jsonl, test_file: file_test}}\n"
        "search: preset:response-classifier\n"
    )
    api.route("POST", "/v1/files", uploaded_as(["file_train"]))  # type: ignore[arg-type]
    api.route(
        "POST", "/v1/sweeps", lambda _r, _m: httpx.Response(201, json={"id": "swp_1", "status": "queued"})
    )

    code, out, err = run(api, "sweep", "submit", "sweep.yaml")

    assert code == 0, err
    assert json_body(api.requests[-1])["base"]["data"] == {
        "train_file": "file_train",
        "test_file": "file_test",
    }
    assert "Uploaded train.jsonl as file_train for base.data.train_file" in err
    assert out == "swp_1\n"
