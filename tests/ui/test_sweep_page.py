"""The dashboard's sweep page in a real browser, against the real API and a real worker.

A two-trial sweep of the tiny job runs to its report while the page watches; another is cancelled from
the page, after its confirmation was first dismissed. No page reaches any host but the service.
"""

from typing import Any

import pytest
from tiny_assets import jsonl_bytes, sentiment_rows

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)").expect

pytestmark = pytest.mark.slow
SWEEP_SECONDS = 480


def sweep_request(service: Any, tiny_spec: dict[str, Any], *, epochs: int) -> dict[str, Any]:
    """A grid over the soft targets' weight on the tiny job, with a test file of its own for the best."""
    upload = service.client.post("/v1/files", files={"file": ("test.jsonl", jsonl_bytes(sentiment_rows(40)))})
    assert upload.status_code == 201, upload.text
    base = {key: value for key, value in tiny_spec.items() if key != "name"}
    base["data"] = {**base["data"], "test_file": upload.json()["id"]}
    base["training"] = {**base["training"], "epochs": epochs}
    return {
        "name": f"alpha-grid-{epochs}",
        "base": base,
        "search": {"method.alpha": [0.3, 0.8]},
        "sampler": "grid",
        "pruner": "none",
        "budget": {"max_trials": 2, "max_parallel": 1},
    }


def open_sweep(browser_page: Any, service: Any, sweep_id: str) -> None:
    """Open /ui/, type the key into the page, and show one sweep from the sweeps list."""
    browser_page.goto(f"{service.url}/ui/")
    browser_page.fill("#key", service.api_key)
    browser_page.click("#key-form button[type=submit]")
    browser_page.click(f"#sweep-rows tr[data-sweep='{sweep_id}'] a")


def wait_for_status(browser_page: Any, service: Any, sweep_id: str, status: str, timeout: float) -> None:
    """Wait until the page shows the sweep's status; on a timeout, fail with the sweep as the API has it."""
    try:
        browser_page.locator("#sweep-status").get_by_text(status).wait_for(timeout=timeout * 1000)
    except Exception as error:
        sweep = service.client.get(f"/v1/sweeps/{sweep_id}").json()
        jobs = service.client.get("/v1/jobs", params={"sweep_id": sweep_id}).json()["data"]
        seen = [(job["id"], job["status"], job["error"]) for job in jobs]
        raise AssertionError(f"the page never showed {status}: {sweep} {seen}") from error


def test_the_sweep_page_shows_trials_the_best_highlighted_curves_and_the_report(
    page: tuple[Any, Any], service: Any, tiny_spec: dict[str, Any], screenshot_path: Any
) -> None:
    created = service.client.post("/v1/sweeps", json=sweep_request(service, tiny_spec, epochs=2))
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    browser_page, traffic = page
    open_sweep(browser_page, service, sweep_id)

    wait_for_status(browser_page, service, sweep_id, "succeeded", SWEEP_SECONDS)
    browser_page.wait_for_timeout(1500)  # one more refresh after the status, so the rows are the final ones

    sweep = service.client.get(f"/v1/sweeps/{sweep_id}").json()
    rows = browser_page.locator("#trial-rows tr")
    assert rows.count() == len(sweep["trials"]) == 2
    best = browser_page.locator("#trial-rows tr.best")
    assert best.count() == 1 and best.get_attribute("data-trial") == str(sweep["best_trial"]["number"])
    for trial in sweep["trials"]:
        line = browser_page.locator(f"#trial-rows tr[data-trial='{trial['number']}'] svg polyline")
        assert len(line.get_attribute("points").split()) == len(trial["eval_curve"]) > 0
    report = browser_page.locator("#sweep-report")
    for row in ("Test: student", "Retention", "Gain over the control", "Trials", "CPU-hours"):
        expect(report.locator(f"tr[data-row='{row}'] td")).not_to_have_text("–")
    verdict = sweep["report"]["verdict"]
    expect(report.locator("tr[data-row='Verdict'] td")).to_have_text(
        f"{verdict['verdict']}: {verdict['explanation']}"
    )
    assert browser_page.is_disabled("#sweep-cancel")
    browser_page.screenshot(path=screenshot_path("dashboard-sweep.png"), full_page=True)
    # A trial's number links to its job's page, which links back to the sweep.
    best_job = sweep["best_trial"]["job_id"]
    best.locator("a").click()
    expect(browser_page.locator("#job-title")).to_contain_text(best_job)
    expect(browser_page.locator("#job-sweep")).to_have_text(f"of sweep {sweep_id}")
    assert browser_page.is_hidden("#sweep")
    assert traffic.blocked == [] and traffic.page_errors == [] and traffic.policy_violations == []


def test_the_sweep_page_cancels_only_after_the_confirmation(
    page: tuple[Any, Any], service: Any, tiny_spec: dict[str, Any]
) -> None:
    created = service.client.post("/v1/sweeps", json=sweep_request(service, tiny_spec, epochs=100))
    sweep_id = created.json()["id"]
    browser_page, traffic = page
    open_sweep(browser_page, service, sweep_id)
    browser_page.wait_for_selector("#sweep-cancel:enabled")

    browser_page.once("dialog", lambda dialog: dialog.dismiss())
    browser_page.click("#sweep-cancel")
    browser_page.wait_for_timeout(500)
    assert not [url for url in traffic.urls if url.endswith(f"/v1/sweeps/{sweep_id}/cancel")]
    browser_page.once("dialog", lambda dialog: dialog.accept())
    browser_page.click("#sweep-cancel")

    wait_for_status(browser_page, service, sweep_id, "cancelled", 60)
    assert service.client.get(f"/v1/sweeps/{sweep_id}").json()["status"] == "cancelled"
    assert browser_page.is_disabled("#sweep-cancel")
    assert traffic.page_errors == [] and traffic.policy_violations == []
