"""The service as deployed (uvicorn and a Celery worker), a tenant of its own, and one headless Chromium.

Chromium is Debian's package, installed by scripts/setup and driven through Playwright's Python package;
no browser is downloaded. Every request a page makes to any other origin is aborted and recorded.
"""

import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_ports import free_port
from service_processes import start_api, start_worker, stop
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 900}
DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"


@dataclass
class Service:
    """The running API's address, and a client of it holding the tenant's key."""

    url: str
    api_key: str
    client: httpx.Client


@dataclass
class Traffic:
    """What pages asked for (every URL, those to other origins, which were aborted) and what they logged."""

    urls: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def policy_violations(self) -> list[str]:
        """What the pages' Content-Security-Policy refused, as the browser reported it."""
        return [text for text in self.console_errors if "Content Security Policy" in text]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, launched once for the module."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: scripts/setup installs Debian's chromium package as root")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


def _create_key(tenant: str) -> str:
    from app.auth.service import create_key
    from app.core.db import get_sessionmaker

    with get_sessionmaker()() as session:
        key = create_key(session=session, tenant=tenant, name="browser tests")
        session.commit()
    return key


@pytest.fixture(scope="module")
def service(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """uvicorn and a Celery worker on the test database and queue, and a key of a fresh tenant."""
    logs = tmp_path_factory.mktemp("service")
    env = {**os.environ, "DISTILLERY_HEARTBEAT_SECONDS": "1", "DISTILLERY_RECONCILE_SECONDS": "3600"}
    worker = start_worker(env, queue_name=settings.queue_name, log_path=logs / "worker.log")
    port = free_port()
    try:
        api = start_api(env, port=port, log_path=logs / "api.log")
    except BaseException:
        stop(worker)
        raise
    key = _create_key(f"browser-{secrets.token_hex(3)}")
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        yield Service(url=url, api_key=key, client=client)
    stop(api)
    if stop(worker) not in (0, -15):
        print((logs / "worker.log").read_text()[-5000:])


@pytest.fixture(scope="module")
def tiny_spec(service: Service, settings: Any) -> dict[str, Any]:
    """Response KD from a tiny BERT teacher on 160 uploaded rows: 400 steps, a few seconds of training.

    Long enough that the worker stores progress (at most every 2 s) while the page watches it run.
    """
    teacher = settings.model_roots[0] / "browser-teacher"
    if not (teacher / "config.json").exists():
        save_tiny_bert_classifier(teacher)
    upload = service.client.post(
        "/v1/files", files={"file": ("tweets.jsonl", jsonl_bytes(sentiment_rows(160)))}
    )
    assert upload.status_code == 201, upload.text
    return {
        "name": "sentiment-1layer",
        "teacher": {"path": "browser-teacher"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": upload.json()["id"], "max_length": 16},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {"epochs": 20, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }


@pytest.fixture(scope="module")
def open_context(browser: Any, service: Service) -> Any:
    """`open_context()`: a browser context whose requests to other origins are aborted and recorded."""

    def open_gated() -> tuple[Any, Traffic]:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        traffic = Traffic()

        def gate(route: Any) -> None:
            request = route.request
            traffic.urls.append(request.url)
            traffic.headers[f"{request.method} {request.url}"] = request.headers
            if request.url.startswith(service.url + "/"):
                route.continue_()
            else:
                traffic.blocked.append(request.url)
                route.abort()

        context.route(re.compile(".*"), gate)
        context.on("console", lambda m: traffic.console_errors.append(m.text) if m.type == "error" else None)
        context.on("weberror", lambda error: traffic.page_errors.append(str(error.error)))
        return context, traffic

    return open_gated


@pytest.fixture
def page(open_context: Any) -> Iterator[tuple[Any, Traffic]]:
    """A fresh page in a gated context of its own."""
    context, traffic = open_context()
    yield context.new_page(), traffic
    context.close()


@pytest.fixture(scope="session")
def screenshot_path(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Where a page's screenshot goes: docs/ when DISTILLERY_UPDATE_SCREENSHOTS=1, else a scratch folder."""
    update = os.environ.get("DISTILLERY_UPDATE_SCREENSHOTS") == "1"
    folder = DOCS_DIR if update else tmp_path_factory.mktemp("shots")
    return lambda name: folder / name
