"""The `distillery` commands, run with typer's CliRunner against a client on the fake API."""

import io
import re
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_fake_api import FakeApi, error_response, json_body, make_job, page
from typer.testing import CliRunner

from distillery.cli.main import app
from distillery.cli.state import CliState
from distillery.client import DistilleryClient

WIDE = {"COLUMNS": "200"}


def run(api: FakeApi, *args: str) -> tuple[int, str, str]:
    """Run the CLI with a client on the fake API; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args), obj=CliState(client=api.client()), env=WIDE)
    return result.exit_code, result.stdout, result.stderr


def test_jobs_prints_a_table_of_jobs(api: FakeApi) -> None:
    running = make_job("job_aaa", "running", name="tiny-bert", progress={"step": 40, "total_steps": 120})
    failed = make_job("job_bbb", "failed", spec={"method": {"type": "feature"}})
    api.route("GET", "/v1/jobs", page([running, failed], has_more=True))

    code, out, _ = run(api, "jobs", "--status", "running", "--limit", "2")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "METHOD", "PROGRESS", "CREATED"]
    assert lines[1].split()[:5] == ["job_aaa", "tiny-bert", "running", "response", "40/120"]
    assert lines[2].split()[:4] == ["job_bbb", "failed", "feature", "-"]
    assert "distillery jobs --status running --after job_bbb" in out  # the next page keeps the filter
    assert dict(api.requests[0].url.params) == {"status": "running", "limit": "2"}


def test_an_api_error_is_one_red_line_and_exit_code_1(api: FakeApi) -> None:
    api.route(
        "GET", "/v1/jobs/job_x", lambda _r, _m: error_response(404, "not_found", "no job job_x", param="id")
    )

    code, out, err = run(api, "show", "job_x")

    assert code == 1
    assert out == ""
    assert err == "Error: 404 not_found: id: no job job_x\n"


def test_an_unreachable_server_is_reported_without_a_traceback() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    client = DistilleryClient(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(refuse))
    result = CliRunner().invoke(app, ["jobs"], obj=CliState(client=client), env=WIDE)

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the Distillery server is not reachable at http://127.0.0.1:9")
    assert "Traceback" not in result.output


def test_submit_posts_the_yaml_spec_with_set_overrides(api: FakeApi, tmp_path: Path) -> None:
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text("teacher: {path: teacher}\ndata: {train_file: file_1}\nmethod: {type: response}\n")
    api.route("POST", "/v1/jobs", lambda _r, _m: httpx.Response(201, json=make_job("job_new")))

    code, out, _ = run(
        api,
        "submit",
        str(spec_path),
        "--name",
        "exp-1",
        "--set",
        "method.alpha=0.9",
        "--set",
        "training.max_steps=5",
    )

    assert code == 0
    assert json_body(api.requests[0]) == {
        "teacher": {"path": "teacher"},
        "data": {"train_file": "file_1"},
        "method": {"type": "response", "alpha": 0.9},
        "training": {"max_steps": 5},
        "name": "exp-1",
    }
    assert "Created job job_new (queued)" in out
    assert "distillery events job_new --follow" in out


def test_submit_with_a_bad_override_fails_before_any_request(api: FakeApi, tmp_path: Path) -> None:
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text("data: {train_file: file_1}\n")

    code, _, err = run(api, "submit", str(spec_path), "--set", "training.epochs")

    assert code == 1
    assert "--set expects key.path=value" in err
    assert api.requests == []


def follow_routes(api: FakeApi, final_status: str, error: dict[str, Any] | None = None) -> None:
    """A job that runs while its two batches of events are read and then ends in final_status.

    The server has no event stream (the fake answers 404 there), so the CLI polls for events.
    """
    api.route("POST", "/v1/jobs", lambda _r, _m: httpx.Response(201, json=make_job("job_f")))
    running = make_job("job_f", "running", progress={"step": 5, "total_steps": 10, "epoch": 0.5})
    finished = make_job(
        "job_f",
        final_status,
        error=error,
        started_at=1_700_000_000,
        finished_at=1_700_000_200,
        progress={"step": 10, "total_steps": 10, "epoch": 1.0},
    )
    batches: list[list[dict[str, Any]]] = [
        [
            {"id": 1, "type": "status", "level": "info", "message": "running", "created_at": 1_700_000_000},
            {
                "id": 2,
                "type": "metrics",
                "level": "info",
                "message": None,
                "data": {"split": "train", "step": 5, "epoch": 0.5, "metrics": {"loss": 0.5}},
            },
        ],
        [
            {
                "id": 3,
                "type": "metrics",
                "level": "info",
                "message": None,
                "data": {"split": "eval", "step": 10, "epoch": 1.0, "metrics": {"accuracy": 0.875}},
            },
        ],
    ]
    served = {"batches": 0}

    def get_job(_request: httpx.Request, _match: object) -> httpx.Response:
        return httpx.Response(200, json=finished if served["batches"] == len(batches) else running)

    def list_events(_request: httpx.Request, _match: object) -> httpx.Response:
        if served["batches"] == len(batches):
            return httpx.Response(200, json=page([]))
        served["batches"] += 1
        return httpx.Response(200, json=page(batches[served["batches"] - 1]))

    api.route("GET", "/v1/jobs/job_f", get_job)
    api.route("GET", "/v1/jobs/job_f/events", list_events)


def test_submit_follow_shows_progress_metrics_and_where_to_download(api: FakeApi, tmp_path: Path) -> None:
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text("data: {train_file: file_1}\n")
    follow_routes(api, "succeeded")

    code, out, _ = run(api, "submit", str(spec_path), "--follow", "--poll", "0")

    assert code == 0
    assert "10/10" in out
    assert "eval at step 10: accuracy=0.875" in out
    assert "train loss=0.5" in out
    assert "Job job_f succeeded after 3m 20s" in out
    assert "distillery download job_f" in out
    event_cursors = [r.url.params.get("after") for r in api.requests if r.url.path.endswith("/events")]
    assert event_cursors == [None, "2", "3"]


def test_submit_follow_exits_1_with_the_error_when_the_job_fails(api: FakeApi, tmp_path: Path) -> None:
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text("data: {train_file: file_1}\n")
    follow_routes(
        api, "failed", error={"code": "out_of_memory", "message": "CUDA out of memory", "param": None}
    )

    code, out, _ = run(api, "submit", str(spec_path), "--follow", "--poll", "0")

    assert code == 1
    assert "Job job_f failed" in out
    assert "out_of_memory: CUDA out of memory" in out
    assert "distillery download" not in out


def test_show_prints_details_error_and_result(api: FakeApi) -> None:
    job = make_job(
        "job_s",
        "succeeded",
        name="exp",
        attempts=1,
        started_at=1_700_000_000,
        finished_at=1_700_003_725,
        result={"student": {"parameters": 4_400_000}, "eval": {"accuracy": 0.912345}},
        progress={"step": 300, "total_steps": 300, "epoch": 3.0},
    )
    api.route("GET", "/v1/jobs/job_s", job)

    code, out, _ = run(api, "show", "job_s")

    assert code == 0
    assert "succeeded" in out
    assert "300/300 steps, epoch 3" in out
    assert "(took 1h 02m)" in out
    assert "student.parameters  4400000" in out
    assert "eval.accuracy       0.9123" in out


def test_show_names_a_jobs_control_and_a_controls_parent(api: FakeApi) -> None:
    api.route("GET", "/v1/jobs/job_p", make_job("job_p", control_job_id="job_c"))
    api.route("GET", "/v1/jobs/job_c", make_job("job_c", parent_id="job_p"))

    assert re.search(r"^control +job_c", run(api, "show", "job_p")[1], re.MULTILINE)
    assert re.search(r"^control of +job_p", run(api, "show", "job_c")[1], re.MULTILINE)


def test_events_prints_one_line_per_event(api: FakeApi) -> None:
    events = [
        {
            "id": 1,
            "type": "message",
            "level": "warning",
            "message": "slow tokenizer",
            "created_at": 1_700_000_000,
        },
        {
            "id": 2,
            "type": "metrics",
            "level": "info",
            "message": None,
            "created_at": 1_700_000_001,
            "data": {"split": "train", "step": 10, "epoch": 0.1, "metrics": {"loss": 1.25, "lr": 5e-05}},
        },
    ]
    api.route("GET", "/v1/jobs/job_e/events", page(events))

    code, out, _ = run(api, "events", "job_e")

    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[2:] == ["warning", "message", "slow", "tokenizer"]
    assert lines[1].endswith("train step 10 epoch 0.1: loss=1.25 lr=5e-05")


def test_cancel_prints_the_new_status(api: FakeApi) -> None:
    api.route("POST", "/v1/jobs/job_c/cancel", make_job("job_c", "cancelling"))

    code, out, _ = run(api, "cancel", "job_c")

    assert (code, out.strip()) == (0, "Job job_c cancelling")


def test_download_defaults_to_the_extracted_student(api: FakeApi, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("config.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    api.route(
        "GET",
        "/v1/jobs/job_d/artifacts/student.tar.gz",
        lambda _r, _m: httpx.Response(200, content=buffer.getvalue()),
    )

    code, out, _ = run(api, "download", "job_d", "--out", str(tmp_path / "model"))

    assert code == 0
    assert (tmp_path / "model" / "config.json").read_bytes() == b"{}"
    assert "Student saved to" in out


def test_download_one_artifact_by_name(api: FakeApi, tmp_path: Path) -> None:
    api.route("GET", "/v1/jobs/job_d/artifacts/report.json", {"accuracy": 0.9})

    code, out, _ = run(api, "download", "job_d", "--artifact", "report.json", "--out", str(tmp_path))

    assert code == 0
    assert (tmp_path / "report.json").read_text() == '{"accuracy":0.9}'
    assert "Saved report.json" in out


def test_files_upload_and_list(api: FakeApi, tmp_path: Path) -> None:
    dataset = tmp_path / "train.csv"
    dataset.write_text("text,label\nhi,1\n")
    uploaded = {
        "id": "file_1",
        "object": "file",
        "filename": "train.csv",
        "format": "csv",
        "bytes": 1536,
        "rows": 1,
        "created_at": 1_700_000_000,
    }
    api.route("POST", "/v1/files", uploaded)
    api.route("GET", "/v1/files", page([uploaded]))

    up_code, up_out, _ = run(api, "files", "upload", str(dataset))
    list_code, list_out, _ = run(api, "files", "list")

    assert (up_code, list_code) == (0, 0)
    assert up_out == "file_1\n"  # piped: the id alone
    assert list_out.splitlines()[1].split()[:6] == ["file_1", "train.csv", "csv", "1", "1.5", "KiB"]


@pytest.mark.parametrize("option", ["--url", "--api-key"])
def test_global_options_reach_the_client(option: str) -> None:
    state = CliState()
    result = CliRunner().invoke(app, [option, "value-1", "files", "--help"], obj=state)

    assert result.exit_code == 0
    assert (state.url if option == "--url" else state.api_key) == "value-1"


def test_show_of_a_failed_job_prints_its_error_in_one_line(api: FakeApi) -> None:
    error = {"code": "invalid_data", "message": "column 'label' not found", "param": "data.label_column"}
    api.route("GET", "/v1/jobs/job_e", make_job("job_e", "failed", error=error))

    code, out, _ = run(api, "show", "job_e")

    assert code == 0
    assert "Error: invalid_data: column 'label' not found (data.label_column)" in out.splitlines()
    assert "progress  not started" in out
