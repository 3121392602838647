"""The dashboard for many jobs, in a real browser against the real API, on jobs stored as a worker leaves
them: paging, filters, the layout at 1400 and 1024 px, comparing runs, a job's particulars and its whole
error, a confirmed cancel and sizes in their units. No worker runs: the rows are the jobs.
"""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from local_ports import free_port
from seeded_jobs import SPEC, new_tenant, report, seed_artifact, seed_curves, seed_job
from service_processes import start_api, stop

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)").expect


class Api:
    """The running API's address."""

    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture(scope="module")
def service(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """uvicorn on the test database, and no worker: the jobs shown are stored rows."""
    port = free_port()
    api = start_api({**os.environ}, port=port, log_path=tmp_path_factory.mktemp("api") / "api.log")
    yield Api(f"http://127.0.0.1:{port}")
    stop(api)


def open_jobs(browser_page: Any, service: Api, key: str) -> None:
    """Open /ui/ and type the key into the page."""
    browser_page.goto(f"{service.url}/ui/")
    browser_page.fill("#key", key)
    browser_page.click("#key-form button[type=submit]")


def shown_jobs(browser_page: Any) -> list[str]:
    """The ids of the jobs table's rows, top to bottom."""
    ids: list[str] = browser_page.eval_on_selector_all(
        "#job-rows tr", "rows => rows.map(row => row.dataset.job)"
    )
    return ids


def expect_jobs(browser_page: Any, ids: list[str]) -> None:
    """Wait until the jobs table shows exactly these jobs, in this order."""
    shown = "ids => [...document.querySelectorAll('#job-rows tr')].map(row => row.dataset.job).join() === ids"
    browser_page.wait_for_function(shown, arg=",".join(ids), timeout=10_000)


def test_paging_goes_through_every_job_newest_first(page: tuple[Any, Any], service: Api) -> None:
    tenant, key = new_tenant()
    ids = [seed_job(tenant, age_s=100 - index, name=f"run {index}") for index in range(30)]
    browser_page, traffic = page
    open_jobs(browser_page, service, key)
    expect(browser_page.locator("#job-rows tr")).to_have_count(25)

    first = shown_jobs(browser_page)
    expect(browser_page.locator("#newer")).to_be_disabled()
    browser_page.click("#older")
    expect(browser_page.locator("#page-number")).to_have_text("page 2")
    expect(browser_page.locator("#job-rows tr")).to_have_count(5)
    second = shown_jobs(browser_page)
    expect(browser_page.locator("#older")).to_be_disabled()
    browser_page.click("#newer")
    expect(browser_page.locator("#page-number")).to_have_text("page 1")

    assert first + second == ids[::-1]
    assert traffic.page_errors == [] and traffic.policy_violations == []


def test_filters_by_status_method_and_name(page: tuple[Any, Any], service: Api) -> None:
    tenant, key = new_tenant()
    gkd = {**SPEC, "method": {"type": "gkd"}}
    failed = seed_job(tenant, name="sentiment-small", status="failed")
    gkd_job = seed_job(tenant, name="chat-gkd", spec=gkd)
    named = seed_job(tenant, name="Sentiment-large")
    browser_page, _ = page
    open_jobs(browser_page, service, key)
    expect(browser_page.locator("#job-rows tr")).to_have_count(3)

    browser_page.select_option("#filter-status", "failed")
    expect_jobs(browser_page, [failed])
    browser_page.select_option("#filter-status", "")
    browser_page.select_option("#filter-method", "gkd")
    expect_jobs(browser_page, [gkd_job])
    browser_page.select_option("#filter-method", "")
    browser_page.fill("#filter-name", "SENTIMENT")
    expect_jobs(browser_page, [named, failed])
    browser_page.fill("#filter-name", "nothing like it")
    expect(browser_page.locator("#no-jobs")).to_have_text("No job matches these filters.")


@pytest.mark.parametrize("width", [1400, 1024])
def test_the_jobs_table_fits_its_card(page: tuple[Any, Any], service: Api, width: int) -> None:
    tenant, key = new_tenant()
    for index in range(3):
        name = f"a-rather-long-job-name-for-a-sentiment-student-{index}"
        seed_job(tenant, name=name, status="cancelling", step=120 + 140 * index, total_steps=400)
    browser_page, _ = page
    browser_page.set_viewport_size({"width": width, "height": 900})
    open_jobs(browser_page, service, key)
    expect(browser_page.locator("#job-rows tr")).to_have_count(3)

    card = browser_page.locator("#jobs").bounding_box()
    for column in ("Progress", "Created"):
        header = browser_page.locator("#jobs-table th", has_text=column).bounding_box()
        assert header["width"] > 40 and card["x"] <= header["x"]
        assert header["x"] + header["width"] <= card["x"] + card["width"], column
    # Every cell but the name (cut with an ellipsis, whole in its title) shows all its text.
    for cell in browser_page.locator("#job-rows td:not(.name)").all():
        box = cell.bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"]
        sizes = cell.evaluate("node => [node.textContent, node.scrollWidth, node.clientWidth]")
        assert sizes[1] <= sizes[2], sizes[0]
    progress = browser_page.locator("#job-rows td:nth-child(5)").all_text_contents()
    assert [text.strip() for text in progress] == ["100%", "65%", "30%"]
    table_fits = (
        "document.querySelector('#jobs-table').scrollWidth <= document.querySelector('#jobs').clientWidth"
    )
    assert browser_page.evaluate(table_fits)


def test_comparing_runs_overlays_their_curves_and_sets_their_reports_side_by_side(
    page: tuple[Any, Any], service: Api
) -> None:
    tenant, key = new_tenant()
    runs = []
    for index, accuracy in enumerate((0.8, 0.84, 0.86)):
        job_id = seed_job(
            tenant, age_s=60 - index, ran_s=100 + 50 * index, name=f"alpha-{index}", result=report(accuracy)
        )
        seed_curves(job_id, steps=6, train_loss=2.0 + index, eval_accuracy=accuracy)
        runs.append(job_id)
    control = seed_job(tenant, age_s=10, parent_id=runs[0], name="control", result=report(0.78))
    extra = [seed_job(tenant, age_s=5 - index, name=f"other-{index}") for index in range(3)]
    browser_page, traffic = page
    open_jobs(browser_page, service, key)
    expect(browser_page.locator("#job-rows tr")).to_have_count(7)
    expect(browser_page.locator("#compare-picked")).to_be_disabled()

    for job_id in runs:
        browser_page.check(f"#job-rows input[data-pick='{job_id}']")
    for job_id in extra[:2]:
        browser_page.check(f"#job-rows input[data-pick='{job_id}']")
    # Five at most: the sixth box cannot be ticked.
    expect(browser_page.locator(f"#job-rows input[data-pick='{extra[2]}']")).to_be_disabled()
    for job_id in extra[:2]:
        browser_page.uncheck(f"#job-rows input[data-pick='{job_id}']")
    browser_page.click("#compare-picked")

    assert browser_page.evaluate("location.hash") == f"#compare={','.join(runs)}"
    train = browser_page.locator("#compare-curves svg[data-metric='loss'][data-split='train']")
    expect(train.locator("polyline")).to_have_count(3)
    points = [len(line.get_attribute("points").split()) for line in train.locator("polyline").all()]
    assert points == [6] * 3
    held = browser_page.locator("#compare-curves svg[data-metric='loss'][data-split='eval']")
    expect(held.locator("polyline")).to_have_count(3)
    expect(browser_page.locator("#compare-curves svg[data-metric='accuracy'] polyline")).to_have_count(3)
    by_step = train.locator("polyline").first.get_attribute("points")
    browser_page.check("input[name=compare-x][value=time]")
    expect(train).to_have_attribute("data-x", "wall time")
    assert train.locator("polyline").first.get_attribute("points") != by_step

    table = browser_page.locator("#compare-report")
    expect(table.locator("th.run-head")).to_have_count(3)
    assert table.locator("th.side").all_text_contents() == ["teacher", "student", "control"] * 3
    accuracy = table.locator("tr[data-row='accuracy'] td").all_text_contents()
    assert accuracy == ["0.9000", "0.8000", "0.7800", "0.9000", "0.8400", "–", "0.9000", "0.8600", "–"]
    sizes = table.locator("tr[data-row='Size on disk'] td").all_text_contents()
    assert sizes[:3] == ["180 MB", "48 MB", "48 MB"]
    # A run's name links to its job page.
    table.locator("th.run-head a", has_text="alpha-0").click()
    expect(browser_page.locator("#job-links a[data-link='control run:']")).to_have_text(control)
    assert browser_page.is_hidden("#compare")
    assert traffic.page_errors == [] and traffic.policy_violations == []


def test_a_job_shows_its_links_timeline_spec_whole_error_and_train_and_eval_apart(
    page: tuple[Any, Any], service: Api
) -> None:
    tenant, key = new_tenant()
    teacher = seed_job(tenant, age_s=900, name="teacher")
    spec = {**SPEC, "teacher": {"job": teacher}}
    error = {
        "code": "invalid_value",
        "message": "alpha must be at most 1",
        "param": "method.alpha",
        "type": "user",
    }
    failed = seed_job(tenant, age_s=300, ran_s=125, name="bad-alpha", status="failed", spec=spec, error=error)
    seed_curves(failed, steps=4, train_loss=3.0, eval_accuracy=0.7)
    browser_page, traffic = page
    open_jobs(browser_page, service, key)
    browser_page.click(f"#job-rows tr[data-job='{failed}'] a")

    shown_error = browser_page.locator("#job-error")
    expect(shown_error).to_contain_text("invalid_value: alpha must be at most 1")
    expect(shown_error.locator(".param code")).to_have_text("method.alpha")
    expect(browser_page.locator("#job-links a[data-link='teacher job:']")).to_have_text(teacher)
    times = browser_page.locator("#job-times")
    expect(times.locator("tr", has_text="Ran for")).to_contain_text("2 min 05 s")
    expect(times.locator("tr", has_text="Waited in the queue")).to_contain_text("5 s")
    expect(times.locator("tr", has_text="Finished")).not_to_contain_text("–")
    params = browser_page.locator("#job-params")
    expect(params.locator("tr", has_text="training.learning_rate")).to_contain_text("0.00005")
    expect(params.locator("tr", has_text="method.alpha")).to_contain_text("0.5")
    # Train loss (the method's objective) and eval loss (CE) on charts of their own.
    loss_charts = browser_page.locator("#curves svg[data-metric='loss']")
    expect(loss_charts.and_(browser_page.locator("[data-splits='train']")).locator("polyline")).to_have_count(
        1
    )
    expect(loss_charts.and_(browser_page.locator("[data-splits='eval']")).locator("polyline")).to_have_count(
        1
    )
    assert traffic.page_errors == [] and traffic.policy_violations == []


def test_cancel_asks_first_and_sizes_show_in_their_units(page: tuple[Any, Any], service: Api) -> None:
    tenant, key = new_tenant()
    queued = seed_job(tenant, name="waiting", status="queued")
    done = seed_job(tenant, name="done", ran_s=30, result=report(0.8, size=532_000))
    for name, size in (("report.json", 999), ("student.tar.gz", 532_000), ("teacher.tar.gz", 2_345_678_901)):
        seed_artifact(done, name, size)
    browser_page, _ = page
    open_jobs(browser_page, service, key)
    browser_page.click(f"#job-rows tr[data-job='{queued}'] a")
    browser_page.wait_for_selector("#cancel:enabled")

    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    browser_page.once("dialog", dismiss)
    browser_page.click("#cancel")
    browser_page.wait_for_timeout(1500)
    expect(browser_page.locator("#job-status")).to_have_text("queued")
    browser_page.once("dialog", lambda dialog: dialog.accept())
    browser_page.click("#cancel")
    expect(browser_page.locator("#job-status")).to_have_text("cancelled")
    assert asked and queued in asked[0]

    browser_page.click(f"#job-rows tr[data-job='{done}'] a")
    artifacts = browser_page.locator("#artifacts")
    expect(artifacts.locator("li", has_text="student.tar.gz")).to_contain_text("532 KB")
    expect(artifacts.locator("li", has_text="report.json")).to_contain_text("999 B")
    expect(artifacts.locator("li", has_text="teacher.tar.gz")).to_contain_text("2.35 GB")
    expect(browser_page.locator("#report tr", has_text="Size on disk")).to_contain_text("532 KB")
