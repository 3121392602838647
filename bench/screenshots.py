"""Screenshots of the dashboard from a real run: the quickstart's teacher, distilled student and control.

`python -m bench.screenshots` after `distillery quickstart` (same data directory, `./var` by default):
starts the embedded service on that data, opens the dashboard in Debian's chromium (driven by
Playwright) and saves `docs/dashboard-jobs.png` (the jobs list), `docs/dashboard-job.png` (the distilled
job: curves, report, gain over its control) and `docs/dashboard-compare.png` (teacher, student and
control compared).
"""

import argparse
from pathlib import Path
from typing import Any

from app.cli.quickstart.service import embedded_service
from app.core.config import DEV_API_KEY
from bench.paths import ROOT
from bench.service.local_servers import free_port

CHROMIUM = "/usr/bin/chromium"
DOCS = ROOT / "docs"
WIDTH, HEIGHT = 1400, 900
WAIT_MS = 60_000


def quickstart_jobs(client: Any) -> tuple[str, str, str]:
    """The newest succeeded distilled job with a control, that control, and the teacher job it names."""
    jobs = list(client.iter_jobs())
    distilled = next(
        job
        for job in jobs
        if job["status"] == "succeeded" and job.get("control_job_id") and job["spec"]["teacher"]
    )
    teacher = next(
        job
        for job in jobs
        if job["status"] == "succeeded"
        and job["spec"]["method"]["type"] == "supervised"
        and not job["parent_id"]
    )
    return teacher["id"], distilled["id"], str(distilled["control_job_id"])


def take(url: str, jobs: tuple[str, str, str]) -> list[Path]:
    """Open the three views and save each as a full-page PNG under docs/."""
    from playwright.sync_api import sync_playwright

    teacher, distilled, control = jobs
    shots = [DOCS / "dashboard-jobs.png", DOCS / "dashboard-job.png", DOCS / "dashboard-compare.png"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.goto(f"{url}/ui/")
        page.fill("#key", DEV_API_KEY)
        page.click("#key-form button[type=submit]")
        page.locator(f"#job-rows tr[data-job='{distilled}']").wait_for(timeout=WAIT_MS)
        page.screenshot(path=shots[0], full_page=True)
        page.click(f"#job-rows tr[data-job='{distilled}'] a")
        page.locator("#report").get_by_text("Gain over").first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1_000)  # the curves draw after the report
        page.screenshot(path=shots[1], full_page=True)
        page.goto(f"{url}/ui/#compare={teacher},{distilled},{control}")
        page.locator("#compare-report th").first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1_000)
        page.screenshot(path=shots[2], full_page=True)
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var"), help="The quickstart's data directory.")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    with embedded_service(data_dir, port=free_port(), log_path=data_dir / "screenshots.log") as client:
        jobs = quickstart_jobs(client)
        for shot in take(client.base_url, jobs):
            print(f"saved {shot.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
