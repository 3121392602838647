"""A stand-in for the Distillery HTTP API on httpx.MockTransport: routes, and objects in its shapes."""

import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from distillery.client import DistilleryClient

Handler = Callable[[httpx.Request, re.Match[str]], httpx.Response]
BASE_URL = "http://distillery.test"
API_KEY = "dk-test"


class FakeApi:
    """Routes requests by method and path pattern, and records every request it saw."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[httpx.Request] = []

    def route(self, method: str, pattern: str, handler: Handler | dict[str, Any]) -> None:
        """Answer `method` on paths fully matching `pattern`, with a handler or a fixed JSON body."""
        if isinstance(handler, dict):
            body = handler
            handler = lambda _request, _match: httpx.Response(200, json=body)  # noqa: E731
        self.routes.append((method, re.compile(pattern), handler))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.url.path)
            if method == request.method and match:
                return handler(request, match)
        return error_response(404, "not_found", f"no route for {request.method} {request.url.path}")

    def client(self) -> DistilleryClient:
        """A client whose requests this fake answers."""
        return DistilleryClient(base_url=BASE_URL, api_key=API_KEY, transport=httpx.MockTransport(self))


def error_response(status: int, code: str, message: str, param: str | None = None) -> httpx.Response:
    """An error in the API's shape."""
    error = {"code": code, "message": message, "param": param, "type": "user"}
    return httpx.Response(status, json={"error": error})


def page(items: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    """A list object in the API's shape."""
    return {
        "object": "list",
        "data": items,
        "has_more": has_more,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
    }


def make_job(job_id: str, status: str = "queued", **fields: Any) -> dict[str, Any]:
    """A job object in the API's shape."""
    job = {
        "id": job_id,
        "object": "job",
        "name": None,
        "status": status,
        "spec": {
            "task": "sequence_classification",
            "method": {"type": "response"},
            "data": {"train_file": "file_1"},
        },
        "progress": {"step": 0, "total_steps": None, "epoch": None, "estimated_finish_at": None},
        "error": None,
        "attempts": 0,
        "result": None,
        "created_at": 1_700_000_000,
        "started_at": None,
        "finished_at": None,
    }
    job.update(fields)
    return job


def json_body(request: httpx.Request) -> Any:
    """The JSON a request carried."""
    return json.loads(request.content)


def make_trial(number: int, status: str, value: float | None = None, **params: Any) -> dict[str, Any]:
    """A sweep's trial in the API's shape; `params` by searched field, dots written as '__'."""
    return {
        "number": number,
        "job_id": f"job_t{number}",
        "status": status,
        "params": {key.replace("__", "."): param for key, param in params.items()},
        "value": value,
        "best_step": None,
        "eval_curve": [],
    }


def make_sweep(sweep_id: str, status: str = "running", **fields: Any) -> dict[str, Any]:
    """A sweep object in the API's shape: no trials yet, a budget of 4, accuracy maximised."""
    sweep: dict[str, Any] = {
        "id": sweep_id,
        "object": "sweep",
        "name": None,
        "status": status,
        "stage": "trials",
        "spec": {
            "budget": {"max_trials": 4, "max_parallel": 1},
            "objective": {"metric": "accuracy", "direction": "maximize"},
            "sampler": "tpe",
            "pruner": "asha",
        },
        "trials": [],
        "best_trial": None,
        "report": None,
        "metadata": None,
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
        "finished_at": None,
    }
    sweep.update(fields)
    return sweep
