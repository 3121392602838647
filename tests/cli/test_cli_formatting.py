"""The small formatters behind the tables and the progress bar."""

from distillery.cli.console import format_age, format_duration, format_eta, format_metrics
from distillery.cli.files import format_bytes
from distillery.cli.follow import LatestMetrics, ProgressView, note_event, progress_line, progress_view


def test_durations_read_in_the_two_largest_units() -> None:
    assert [format_duration(s) for s in (None, 0, 45, 200, 3725)] == ["-", "0s", "45s", "3m 20s", "1h 02m"]


def test_ages_are_short_enough_for_a_table() -> None:
    now = 1_700_000_000
    ages = [format_age(now - seconds, now) for seconds in (5, 125, 7300, 3 * 86400)]

    assert ages == ["5s ago", "2m ago", "2h ago", "3d ago"]
    assert format_age(None) == "-"


def test_sizes_use_binary_units() -> None:
    assert [format_bytes(n) for n in (None, 512, 1536, 5 * 1024**3)] == ["-", "512 B", "1.5 KiB", "5.0 GiB"]


def test_metrics_are_name_value_pairs_with_four_significant_digits() -> None:
    assert format_metrics({"loss": 0.123456, "accuracy": 1, "lr": 5e-5}) == "loss=0.1235 accuracy=1 lr=5e-05"


def test_progress_view_shows_steps_epoch_eta_and_latest_metrics() -> None:
    latest = LatestMetrics()
    train = {"type": "metrics", "data": {"split": "train", "step": 4, "metrics": {"loss": 0.5}}}
    evaluation = {"type": "metrics", "data": {"split": "eval", "step": 4, "metrics": {"accuracy": 0.75}}}
    job = {
        "status": "running",
        "progress": {"step": 4, "total_steps": 16, "epoch": 0.25, "estimated_finish_at": 1_000_090},
    }

    assert note_event(train, latest) is None
    assert note_event(evaluation, latest) == "eval at step 4: accuracy=0.75"
    view = progress_view(job, latest, now=1_000_000)

    assert (view.step, view.total, view.epoch, view.eta) == (4, 16, "0.25", "1m 30s")
    assert view.metrics == "eval accuracy=0.75 | train loss=0.5"


def test_progress_view_of_a_queued_job_has_no_total_and_no_eta() -> None:
    view = progress_view({"status": "queued", "progress": {"step": 0}}, LatestMetrics(), now=0)

    assert (view.step, view.total, view.epoch, view.eta) == (0, None, "-", "-")
    assert format_eta(None) == "-"


def test_progress_line_is_the_bar_as_text_for_logs() -> None:
    view = ProgressView(
        status="running", step=40, total=120, epoch="1.3", eta="2m 10s", metrics="train loss=0.41"
    )
    assert progress_line(view) == "running step 40/120 epoch 1.3 ETA 2m 10s train loss=0.41"
    queued = ProgressView(status="queued", step=0, total=None, epoch="-", eta="-", metrics="")
    assert progress_line(queued) == "queued step 0 epoch - ETA -"
