"""`GET /metrics`: Prometheus text that parses, with jobs, timings, outcomes, workers and HTTP requests."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from api.arrange import finish_job
from app.core.base import utcnow
from app.jobs.models import Job

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(text: str) -> Samples:
    """Every sample, keyed by name and sorted labels; parsing is itself the format check."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: Any) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples_of(response.text)


def test_metrics_parse_and_count_a_posted_job_in_its_state(
    anonymous_client: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    create_job()

    samples = scrape(anonymous_client)

    assert samples[("distillery_metrics_database_up", ())] == 1
    by_status = {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "distillery_jobs" and dict(labels)["tenant"] == "default"
    }
    assert by_status == {
        "queued": 1,
        "running": 0,
        "cancelling": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert samples[("distillery_queue_depth", ())] == 1
    assert 0 <= samples[("distillery_queue_oldest_seconds", ())] < 60


def http_requests(samples: Samples) -> dict[tuple[str, str, str], float]:
    return {
        (dict(labels)["method"], dict(labels)["route"], dict(labels)["status"]): value
        for (name, labels), value in samples.items()
        if name == "distillery_http_requests_total"
    }


def test_http_requests_are_counted_by_route_template_and_status(
    client: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]
    before = http_requests(scrape(client))

    assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    assert client.get("/v1/jobs/job_0123456789abcdef01234567").status_code == 404
    assert client.put(f"/v1/jobs/{job_id}").status_code == 405
    assert client.head(f"/v1/jobs/{job_id}").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    after = http_requests(scrape(client))

    counted = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert counted == {
        ("GET", "/v1/jobs/{job_id}", "200"): 1,
        ("GET", "/v1/jobs/{job_id}", "404"): 1,
        ("PUT", "/v1/jobs/{job_id}", "405"): 1,
        ("HEAD", "/v1/jobs/{job_id}", "200"): 1,
        ("GET", "unmatched", "404"): 1,
        ("GET", "/metrics", "200"): 1,  # the first scrape
    }
    assert not any(job_id in route for _, route, _ in after)


def histogram_counts(samples: Samples, name: str) -> dict[str, float]:
    """A histogram's observation count by route."""
    return {
        dict(labels)["route"]: value
        for (sample, labels), value in samples.items()
        if sample == f"{name}_count"
    }


def test_dashboard_assets_count_under_their_mount_and_streams_apart_from_requests(
    client: Any, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]
    finish_job(db_session, job_id)
    stream_route = "/v1/jobs/{job_id}/events/stream"
    before = scrape(client)

    assert client.get("/ui/dashboard.js").status_code == 200
    assert client.get(f"/v1/jobs/{job_id}/events/stream").status_code == 200
    after = scrape(client)

    asset = ("GET", "/ui/{path}", "200")
    assert http_requests(after)[asset] - http_requests(before).get(asset, 0) == 1
    streams = "distillery_event_stream_duration_seconds"
    requests = "distillery_http_request_duration_seconds"
    streamed = histogram_counts(after, streams)[stream_route] - histogram_counts(before, streams).get(
        stream_route, 0
    )
    timed = [histogram_counts(samples, requests).get(stream_route, 0) for samples in (before, after)]
    assert streamed == 1 and timed[0] == timed[1]


def test_queue_and_run_times_outcomes_and_workers_come_from_the_database(
    anonymous_client: Any, db_session: Any
) -> None:
    now = utcnow()
    start = now - timedelta(hours=2)

    def job(status: str, **fields: Any) -> Job:
        return Job(tenant="acme", spec={}, status=status, queued_at=start, **fields)

    db_session.add_all(
        [
            # queued 10 s, ran 120 s
            job(
                "succeeded",
                started_at=start + timedelta(seconds=10),
                finished_at=start + timedelta(seconds=130),
            ),
            # queued 100 s, ran 300 s
            job(
                "failed",
                started_at=start + timedelta(seconds=100),
                finished_at=start + timedelta(seconds=400),
                error={"code": "diverged", "message": "the loss is nan", "type": "user"},
            ),
            job("cancelled", finished_at=start),  # cancelled while queued: never started
            job("running", started_at=start, worker_id="gpu-1:10", heartbeat_at=now),
            job("running", started_at=start, worker_id="gpu-2:20", heartbeat_at=now - timedelta(hours=1)),
        ]
    )
    db_session.commit()

    samples = scrape(anonymous_client)

    def histogram(name: str) -> dict[str, float]:
        buckets = {
            dict(labels)["le"]: value for (n, labels), value in samples.items() if n == f"{name}_bucket"
        }
        return {**buckets, "count": samples[(f"{name}_count", ())], "sum": samples[(f"{name}_sum", ())]}

    queued = histogram("distillery_job_queued_seconds")
    # Started jobs: the two running ones at once (0 s), then 10 s and 100 s; the cancelled one never started.
    assert (queued["5"], queued["15"], queued["60"], queued["300"], queued["+Inf"]) == (2, 3, 3, 4, 4)
    assert queued["count"] == 4 and round(queued["sum"]) == 10 + 100
    running = histogram("distillery_job_running_seconds")
    assert (running["60"], running["300"], running["+Inf"], running["count"]) == (0, 2, 2, 2)
    assert round(running["sum"]) == 120 + 300
    outcomes = {labels: v for (n, labels), v in samples.items() if n == "distillery_job_outcomes_total"}
    assert outcomes == {
        (("error_code", ""), ("outcome", "succeeded")): 1,
        (("error_code", "diverged"), ("outcome", "failed")): 1,
        (("error_code", ""), ("outcome", "cancelled")): 1,
    }
    workers = {
        dict(labels)["heartbeat_age"]: v
        for (n, labels), v in samples.items()
        if n == "distillery_workers_seen"
    }
    assert workers == {"fresh": 1, "late": 0, "lost": 1}
    assert samples[("distillery_worker_heartbeat_oldest_seconds", ())] >= 3600
    assert samples[("distillery_jobs", (("status", "running"), ("tenant", "acme")))] == 2


def test_a_metrics_token_when_set_is_required(make_client: Callable[..., Any], settings: Any) -> None:
    protected = make_client(metrics_token="scrape-secret")

    refused = protected.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_metrics_token"
    assert refused.headers["www-authenticate"] == "Bearer"
    api_key = {"Authorization": f"Bearer {settings.dev_api_key}"}
    assert protected.get("/metrics", headers=api_key).status_code == 401
    assert protected.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


def test_an_unreachable_database_still_gives_the_http_metrics_and_database_up_0(
    make_client: Callable[..., Any],
) -> None:
    cut_off = make_client(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none")

    samples = scrape(cut_off)

    assert samples[("distillery_metrics_database_up", ())] == 0
    assert not any(name == "distillery_jobs" for name, _ in samples)
    assert ("distillery_event_streams_open", ()) in samples


def test_openmetrics_is_served_when_asked(anonymous_client: Any) -> None:
    response = anonymous_client.get("/metrics", headers={"Accept": "application/openmetrics-text"})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
