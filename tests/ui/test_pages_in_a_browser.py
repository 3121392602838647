"""Swagger UI, ReDoc and the dashboard in a real browser, against the real API and a real worker.

No page may reach any host but the service: every other request is aborted and recorded, and none may
be attempted. A job is posted through Swagger UI's "Try it out"; the dashboard follows it as it trains.
"""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.jobs.schemas import load_job_examples

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)").expect

pytestmark = pytest.mark.slow
TERMINAL = {"succeeded", "failed", "cancelled"}
CREATE_JOB = "#operations-jobs-create_job_v1_jobs_post"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def posted_through_swagger(open_context: Any, service: Any, tiny_spec: dict[str, Any]) -> dict[str, Any]:
    """Authorize with the key, then post the tiny job with "Try it out"; what the page saw and sent."""
    context, traffic = open_context()
    page = context.new_page()
    page.goto(f"{service.url}/docs")
    page.get_by_role("button", name="Authorize").first.click()
    page.fill("#auth-bearer-value", service.api_key)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")
    operation = page.locator(CREATE_JOB)
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    menu = operation.locator("select.examples-select-element")
    examples = menu.locator("option").all_text_contents()
    menu.select_option(label="supervised")
    body = operation.locator("textarea.body-param__text")
    expect(body).to_contain_text('"type": "supervised"')
    chosen = json.loads(body.input_value())
    body.fill(json.dumps(tiny_spec))
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    code = (status.text_content() or "").strip()
    answer = operation.locator(".live-responses-table .highlight-code pre").first.text_content()
    context.close()
    return {
        "examples": examples,
        "chosen": chosen,
        "status": code,
        "job": json.loads(answer or "{}"),
        "authorization": traffic.headers[f"POST {service.url}/v1/jobs"].get("authorization"),
        "blocked": traffic.blocked,
        "policy_violations": traffic.policy_violations,
    }


def test_swagger_ui_and_redoc_render_with_no_request_beyond_the_service(
    page: tuple[Any, Any], service: Any, screenshot_path: Any
) -> None:
    browser_page, traffic = page

    browser_page.goto(f"{service.url}/docs")
    browser_page.locator(".swagger-ui .info .title").get_by_text("Distillery").wait_for()
    browser_page.locator(CREATE_JOB).wait_for()
    browser_page.screenshot(path=screenshot_path("swagger-ui.png"))
    swagger_ui_violations = list(traffic.policy_violations)
    browser_page.goto(f"{service.url}/redoc")
    browser_page.locator("h1").get_by_text("Distillery").wait_for()
    browser_page.locator("h2", has_text="Create a job").first.wait_for()

    assert traffic.blocked == []
    assert traffic.page_errors == []
    # Swagger UI starts from a script file and styles nothing inline: its page's policy refuses nothing.
    assert swagger_ui_violations == []
    # ReDoc's sidebar links its vendor's logo from a CDN: the page's policy refuses it, unsent; nothing else.
    assert traffic.console_errors == traffic.policy_violations
    assert {text.split("'")[1] for text in traffic.policy_violations} <= {REDOC_LOGO}
    assert any(url.endswith("/static-offline-docs/swagger-ui-bundle.js") for url in traffic.urls)
    assert any(url.endswith("/static-offline-docs/redoc.standalone.js") for url in traffic.urls)


def test_a_job_is_posted_through_try_it_out_with_the_authorize_key(
    posted_through_swagger: dict[str, Any], service: Any, tiny_spec: dict[str, Any]
) -> None:
    assert posted_through_swagger["blocked"] == []
    assert posted_through_swagger["policy_violations"] == []
    assert posted_through_swagger["status"] == "201"
    assert posted_through_swagger["authorization"] == f"Bearer {service.api_key}"
    job = posted_through_swagger["job"]
    assert job["name"] == tiny_spec["name"] and job["status"] == "queued"
    stored = service.client.get(f"/v1/jobs/{job['id']}").json()
    assert stored["spec"]["training"]["epochs"] == tiny_spec["training"]["epochs"]
    # Every example spec is offered by name in the request body's examples menu, and fills the body.
    examples = load_job_examples()
    assert posted_through_swagger["examples"] == [example["summary"] for example in examples.values()]
    assert posted_through_swagger["chosen"] == examples["supervised"]["value"]


def open_dashboard(browser_page: Any, service: Any, job_id: str) -> None:
    """Open /ui/, type the key into the page, and show one job."""
    browser_page.goto(f"{service.url}/ui/")
    browser_page.fill("#key", service.api_key)
    browser_page.click("#key-form button[type=submit]")
    browser_page.click(f"#job-rows tr[data-job='{job_id}'] a")


def watch_progress(browser_page: Any, *, timeout: float = 120) -> list[tuple[str, str]]:
    """The job's status and step line as the dashboard shows them, sampled until it is terminal."""
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = (
            browser_page.text_content("#job-status") or "",
            browser_page.text_content("#job-steps") or "",
        )
        if not seen or seen[-1] != shown:
            seen.append(shown)
        if shown[0] in TERMINAL:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"the dashboard never showed a finished job: {seen}")


def steps_of(line: str) -> tuple[int, int] | None:
    """(step, total) from "step 12 of 300 · epoch 1.20"."""
    words = line.split()
    return (int(words[1]), int(words[3])) if len(words) >= 4 and words[0] == "step" else None


def test_the_dashboard_shows_the_job_progress_and_curves_updating_live(
    page: tuple[Any, Any], service: Any, posted_through_swagger: dict[str, Any]
) -> None:
    browser_page, traffic = page
    job_id = posted_through_swagger["job"]["id"]
    open_dashboard(browser_page, service, job_id)

    seen = watch_progress(browser_page)

    assert seen[-1][0] == "succeeded", seen
    progress = [steps for _, line in seen if (steps := steps_of(line))]
    total = progress[-1][1]
    assert progress[-1] == (total, total) and total > 0
    assert any(0 < step < total for step, _ in progress), f"no progress shown while it ran: {seen}"
    assert [step for step, _ in progress] == sorted(step for step, _ in progress)
    # The loss curve holds every train loss the job logged, once each.
    events = service.client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    losses = [e for e in events if e["type"] == "metrics" and e["data"]["split"] == "train"]
    loss_line = browser_page.locator("#curves svg[data-metric='loss'] polyline[data-split='train']")
    loss_line.wait_for()
    assert len(loss_line.get_attribute("points").split()) == len(losses) > 1
    # The live stream when the service has one, else polling.
    paths = service.client.get("/openapi.json").json()["paths"]
    expected = "stream" if "/v1/jobs/{job_id}/events/stream" in paths else "polling"
    assert browser_page.get_attribute("#feed", "data-transport") == expected
    assert traffic.blocked == [] and traffic.page_errors == [] and traffic.policy_violations == []
    assert not [url for url in traffic.urls if service.api_key in url]


def test_the_dashboard_shows_the_report_and_downloads_artifacts_with_the_key_from_the_page(
    page: tuple[Any, Any],
    service: Any,
    posted_through_swagger: dict[str, Any],
    screenshot_path: Any,
    tmp_path: Path,
) -> None:
    browser_page, traffic = page
    job_id = posted_through_swagger["job"]["id"]
    open_dashboard(browser_page, service, job_id)
    browser_page.locator("#job-status").get_by_text("succeeded").wait_for(timeout=120_000)
    report = browser_page.locator("#report")
    expect(report).to_contain_text("Retention of accuracy")

    for row in ("Parameters", "Size on disk", "accuracy (eval)", "Latency (ms)", "Speed-up", "Gain over"):
        expect(report.locator("th", has_text=row).first).to_be_visible()
    assert browser_page.is_disabled("#cancel")
    browser_page.screenshot(path=screenshot_path("dashboard.png"), full_page=True)
    with browser_page.expect_download() as download:
        browser_page.click("#artifacts button[data-artifact='report.json']")
    saved = tmp_path / "report.json"
    download.value.save_as(saved)
    assert json.loads(saved.read_text()) == service.client.get(f"/v1/jobs/{job_id}").json()["result"]
    # The key was typed into the page: it stays in this tab's session storage and never enters a URL.
    assert browser_page.evaluate("sessionStorage.getItem('distillery.apiKey')") == service.api_key
    assert browser_page.evaluate("localStorage.length") == 0
    assert not [url for url in traffic.urls if service.api_key in url]
    assert traffic.blocked == [] and traffic.page_errors == [] and traffic.policy_violations == []


def test_the_dashboard_cancels_a_job(page: tuple[Any, Any], service: Any, tiny_spec: dict[str, Any]) -> None:
    long_run = {**tiny_spec, "name": "long-run", "training": {**tiny_spec["training"], "epochs": 100}}
    job = service.client.post("/v1/jobs", json=long_run).json()
    browser_page, traffic = page
    open_dashboard(browser_page, service, job["id"])
    browser_page.wait_for_selector("#cancel:enabled")

    browser_page.once("dialog", lambda dialog: dialog.accept())
    browser_page.click("#cancel")

    browser_page.locator("#job-status").get_by_text("cancelled").wait_for(timeout=60_000)
    assert service.client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert browser_page.is_disabled("#cancel")
    assert traffic.policy_violations == []


def test_the_dashboard_shows_the_verdict_beside_the_gain_over_the_control(
    page: tuple[Any, Any], service: Any, settings: Any
) -> None:
    from app.auth.service import authenticate
    from app.core.db import get_sessionmaker
    from app.jobs.models import Job, JobStatus

    metrics = {"accuracy": 0.86, "macro_f1": 0.85, "loss": 0.4}
    verdict = {
        "verdict": "did not help",
        "metric": "accuracy",
        "gain": 0.01,
        "noise": 0.014,
        "threshold": 0.028,
        "teacher_over_control": 0.05,
        "explanation": "the student's gain over its control on accuracy is +0.01, within the noise ±0.014",
    }
    control = {"job_id": "job_c", "status": "succeeded", "mode": "base", "split": "eval"}
    control |= {
        "measures": "distillation and the teacher's initialisation together",
        "gain": {"accuracy": 0.01},
    }
    result = {
        "student": {"eval": metrics},
        "teacher": {"eval": metrics},
        "control": control | {"verdict": verdict},
    }
    with get_sessionmaker()() as session:
        tenant = authenticate(session=session, token=service.api_key, settings=settings)
        job = Job(tenant=tenant, spec={}, status=JobStatus.SUCCEEDED, result=result, name="judged")
        session.add(job)
        session.commit()
        job_id = job.id
    browser_page, traffic = page
    open_dashboard(browser_page, service, job_id)
    report = browser_page.locator("#report")

    expect(report.locator("tr", has_text="Verdict")).to_contain_text("did not help: the student's gain")
    expect(report.locator("tr", has_text="Control (base)")).to_contain_text("initialisation together")
    assert traffic.page_errors == []
