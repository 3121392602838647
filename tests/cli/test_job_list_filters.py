"""`distillery jobs --method --name` and the client's list filters, against the real API."""

from collections.abc import Iterator
from typing import Any

import pytest
from in_process import in_process_client
from typer.testing import CliRunner

from distillery.cli.main import app
from distillery.cli.state import CliState
from distillery.client import DistilleryClient


@pytest.fixture
def api_client(client: Any, settings: Any) -> Iterator[DistilleryClient]:
    """The Python client of the test API, authenticated with the development key."""
    with in_process_client(client, settings.dev_api_key) as api:
        yield api


def test_the_client_and_the_cli_filter_jobs_by_method_and_name(
    api_client: DistilleryClient, create_job: Any, job_spec: dict[str, Any]
) -> None:
    wanted = [create_job(name=f"Sentiment run {index}")["id"] for index in range(3)]
    student = {"model": {"path": job_spec["teacher"]["path"]}}
    plain = create_job(name="sentiment control", method={"type": "supervised"}, teacher=None, student=student)

    page = api_client.list_jobs(method="response", name="sentiment", limit=2)
    assert [job["id"] for job in page["data"]] == wanted[::-1][:2] and page["has_more"]
    assert [job["id"] for job in api_client.list_jobs(method="supervised")["data"]] == [plain["id"]]

    result = CliRunner().invoke(
        app,
        ["jobs", "--method", "response", "--name", "sentiment", "-n", "2"],
        obj=CliState(client=api_client),
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert wanted[2] in result.stdout and plain["id"] not in result.stdout
    assert f"distillery jobs --method response --name sentiment --after {wanted[1]}" in result.stdout
