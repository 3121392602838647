"""Request ids: taken from `X-Request-ID` or made, echoed, and on the API's JSON log lines."""

import json
import re
import time
from typing import Any

import httpx

from api.conftest import LiveApi

GENERATED = re.compile(r"[0-9a-f]{32}")


def test_a_well_formed_request_id_is_echoed_and_another_is_replaced(anonymous_client: Any) -> None:
    given = anonymous_client.get("/healthz", headers={"X-Request-ID": "trace-7f3a:span/42"})
    malformed = anonymous_client.get("/healthz", headers={"X-Request-ID": "two words"})
    missing = anonymous_client.get("/healthz")

    assert given.headers["x-request-id"] == "trace-7f3a:span/42"
    assert GENERATED.fullmatch(malformed.headers["x-request-id"])
    assert GENERATED.fullmatch(missing.headers["x-request-id"])
    assert missing.headers["x-request-id"] != malformed.headers["x-request-id"]


def log_lines(live_api: LiveApi) -> list[dict[str, Any]]:
    """Every line the API process has logged, each parsed as one JSON object."""
    return [json.loads(line) for line in live_api.log_path.read_text().splitlines() if line]


def test_json_log_lines_carry_the_request_id(live_api: LiveApi, settings: Any) -> None:
    headers = {"Authorization": f"Bearer {settings.dev_api_key}", "X-Request-ID": "req-json-logs-1"}
    answered = httpx.get(f"{live_api.url}/v1/jobs/job_0123456789abcdef01234567", headers=headers, timeout=10)
    generated = httpx.get(f"{live_api.url}/healthz", timeout=10).headers["x-request-id"]
    assert answered.status_code == 404 and answered.headers["x-request-id"] == "req-json-logs-1"

    deadline = time.monotonic() + 10
    while not any(line.get("request_id") == generated for line in log_lines(live_api)):
        assert time.monotonic() < deadline, live_api.log_path.read_text()[-2000:]
        time.sleep(0.1)

    lines = log_lines(live_api)  # every line is JSON, from start-up on
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    access = {line["request_id"]: line for line in lines if line["logger"] == "uvicorn.access"}
    assert "/v1/jobs/job_0123456789abcdef01234567" in access["req-json-logs-1"]["message"]
    assert "404" in access["req-json-logs-1"]["message"]
    assert "/healthz" in access[generated]["message"]
