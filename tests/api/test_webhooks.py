"""Webhook endpoints over HTTP: validation, secrets, tenancy, and the outbox rows job events write."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from app.jobs.models import JobStatus
from app.jobs.transitions import transition
from app.webhooks.models import WebhookDelivery

# A public address: registering it resolves nothing, and no test sends to it.
PUBLIC_URL = "https://93.184.215.14/hooks/distillery"


def register(client: Any, url: str = PUBLIC_URL, **fields: Any) -> Any:
    return client.post("/v1/webhooks", json={"url": url, **fields})


def deliveries(client: Any, webhook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def queued_delivery_ids(redis_client: Any, settings: Any) -> list[str]:
    """Delivery ids of the send tasks waiting on the webhook queue."""
    raw = redis_client.lrange(settings.webhook_queue_name, 0, -1)
    return [json.loads(json.loads(item)["headers"]["argsrepr"].replace("'", '"'))[0] for item in raw]


def test_a_webhook_shows_its_secret_once_and_the_secret_verifies_its_signatures(client: Any) -> None:
    created = register(client, events=["job.succeeded", "job.failed"])

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("wh_") and body["object"] == "webhook"
    assert body["url"] == PUBLIC_URL and body["events"] == ["job.failed", "job.succeeded"]
    secret = body["secret"]
    assert secret.startswith("whsec_")
    verifier = Webhook(secret)
    from app.core.base import utcnow
    from app.webhooks.signing import signed_headers

    headers = signed_headers(secret, message_id="evt_1", body='{"a":1}', at=utcnow())
    assert verifier.verify('{"a":1}', headers) == {"a": 1}

    shown = client.get(f"/v1/webhooks/{body['id']}")
    listed = client.get("/v1/webhooks")
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert [item["id"] for item in listed.json()["data"]] == [body["id"]]
    assert secret not in shown.text + listed.text


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://93.184.215.14/hook", "scheme"),
        ("http://93.184.215.14/hook", "must be https"),
        ("not a url", "URL"),
        ("https://user:password@93.184.215.14/hook", "credentials"),
        # 2083 characters, one more once normalised with a trailing `/`.
        ("https://" + ".".join(["a" * 63] * 32 + ["a" * 27]), "longer than 2083"),
    ],
)
def test_a_url_of_the_wrong_form_is_a_422_naming_the_url(client: Any, url: str, fragment: str) -> None:
    response = register(client, url)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "url"
    assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.7/hook",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/hook",
    ],
)
def test_loopback_private_and_link_local_receivers_are_refused_unless_allowed(
    make_client: Callable[..., Any], settings: Any, url: str
) -> None:
    strict = make_client(api_key=settings.dev_api_key, webhook_allow_http=True)
    lenient = make_client(
        api_key=settings.dev_api_key, webhook_allow_http=True, webhook_allow_private_addresses=True
    )

    refused = register(strict, url)

    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] | {"message": ""} == {
        "code": "url_not_allowed",
        "message": "",
        "param": "url",
        "type": "user",
    }
    lifts = "DISTILLERY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true" in refused.json()["error"]["message"]
    assert lifts == ("0.0.0.0" not in url)  # the setting is named only where it would allow the URL
    allowed = register(lenient, url)
    assert allowed.status_code == (422 if "0.0.0.0" in url else 201), allowed.text


def test_an_http_receiver_refusal_names_the_setting_that_allows_it(
    make_client: Callable[..., Any], settings: Any
) -> None:
    strict = make_client(api_key=settings.dev_api_key)

    refused = register(strict, "http://example.com/hook")

    assert refused.status_code == 422
    assert "DISTILLERY_WEBHOOK_ALLOW_HTTP=true" in refused.json()["error"]["message"]


def test_an_unknown_event_type_is_a_422_naming_the_field(client: Any) -> None:
    unknown = register(client, events=["job.succeeded", "job.exploded"])
    empty = register(client, events=[])
    extra = register(client, secret="whsec_mine")

    assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "events.1"
    assert empty.status_code == 422 and empty.json()["error"]["param"] == "events"
    assert extra.status_code == 422 and extra.json()["error"]["param"] == "secret"


def test_another_tenants_webhooks_are_invisible(
    client: Any, other_tenant_client: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    mine = register(client).json()
    create_job()
    delivery_id = deliveries(client, mine["id"])[0]["id"]
    base = f"/v1/webhooks/{mine['id']}"

    assert other_tenant_client.get("/v1/webhooks").json()["data"] == []
    assert other_tenant_client.get(base).status_code == 404
    assert other_tenant_client.get(f"{base}/deliveries").status_code == 404
    assert other_tenant_client.post(f"{base}/deliveries/{delivery_id}/redeliver").status_code == 404
    assert other_tenant_client.delete(base).status_code == 404
    assert client.get(base).status_code == 200


def test_job_events_reach_only_the_tenants_webhooks_that_take_them(
    client: Any,
    other_tenant_client: Any,
    create_job: Callable[..., dict[str, Any]],
    upload_file: Callable[..., dict[str, Any]],
    tiny_model: str,
    redis_client: Any,
    settings: Any,
) -> None:
    every = register(client).json()
    ends = register(client, events=["job.succeeded", "job.failed", "job.cancelled"]).json()
    theirs = register(other_tenant_client).json()

    job = create_job()
    client.post(f"/v1/jobs/{job['id']}/cancel")

    sent = deliveries(client, every["id"])
    assert [d["event_type"] for d in sent] == ["job.cancelled", "job.queued"]
    assert [d["event_type"] for d in deliveries(client, ends["id"])] == ["job.cancelled"]
    assert deliveries(other_tenant_client, theirs["id"]) == []
    queued = sent[1]
    assert queued["status"] == "pending" and queued["attempts"] == [] and queued["job_id"] == job["id"]
    assert queued["payload"] == {
        "id": queued["id"],
        "type": "job.queued",
        "created_at": queued["created_at"],
        "data": {"job_id": job["id"], "status": "queued"},
    }
    assert sent[0]["payload"]["data"] == {"job_id": job["id"], "status": "cancelled"}
    # Each committed delivery was put on the webhook queue once its transaction committed.
    assert sorted(queued_delivery_ids(redis_client, settings)) == sorted(
        d["id"] for d in [*sent, *deliveries(client, ends["id"])]
    )


def test_a_state_change_that_rolls_back_writes_no_delivery_and_queues_nothing(
    client: Any,
    create_job: Callable[..., dict[str, Any]],
    db_session: Any,
    redis_client: Any,
    settings: Any,
) -> None:
    webhook = register(client).json()
    job = create_job()
    before = queued_delivery_ids(redis_client, settings)

    transition(db_session, job_id=job["id"], target=JobStatus.RUNNING, values={"worker_id": "w"})
    assert db_session.scalars(select(WebhookDelivery.event_type)).all().count("job.running") == 1
    db_session.rollback()

    assert [d["event_type"] for d in deliveries(client, webhook["id"])] == ["job.queued"]
    assert queued_delivery_ids(redis_client, settings) == before


def test_a_finished_delivery_can_be_redelivered_under_the_same_id(
    client: Any,
    create_job: Callable[..., dict[str, Any]],
    db_session: Any,
    redis_client: Any,
    settings: Any,
) -> None:
    webhook = register(client).json()
    create_job()
    delivery = deliveries(client, webhook["id"])[0]
    url = f"/v1/webhooks/{webhook['id']}/deliveries/{delivery['id']}/redeliver"

    pending = client.post(url)
    db_session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery["id"])
        .values(status="failed", tries=10, next_attempt_at=None)
    )
    db_session.commit()
    redis_client.delete(settings.webhook_queue_name)
    again = client.post(url)

    assert pending.status_code == 409 and pending.json()["error"]["code"] == "delivery_pending"
    assert again.status_code == 200, again.text
    assert again.json()["id"] == delivery["id"] and again.json()["status"] == "pending"
    assert queued_delivery_ids(redis_client, settings) == [delivery["id"]]
    assert client.post(url.replace(delivery["id"], "evt_none")).status_code == 404


def test_deleting_a_webhook_deletes_its_deliveries(
    client: Any, create_job: Callable[..., dict[str, Any]], db_session: Any
) -> None:
    webhook = register(client).json()
    create_job()

    deleted = client.delete(f"/v1/webhooks/{webhook['id']}")

    assert deleted.json() == {"id": webhook["id"], "object": "webhook", "deleted": True}
    assert client.get(f"/v1/webhooks/{webhook['id']}").status_code == 404
    assert db_session.scalars(select(WebhookDelivery)).all() == []


def test_deliveries_page_newest_first_and_filter_by_status(
    client: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    webhook = register(client).json()
    jobs = [create_job()["id"] for _ in range(3)]
    base = f"/v1/webhooks/{webhook['id']}/deliveries"

    first = client.get(base, params={"limit": 2}).json()
    second = client.get(base, params={"limit": 2, "after": first["last_id"]}).json()

    assert first["has_more"] and not second["has_more"]
    assert [d["job_id"] for d in first["data"] + second["data"]] == jobs[::-1]
    assert client.get(base, params={"status": "failed"}).json()["data"] == []
    assert client.get(base, params={"status": "exploded"}).json()["error"]["param"] == "status"


def test_a_control_run_and_its_parent_send_their_events_and_the_parents_end_carries_the_gain(
    client: Any, anonymous_client: Any, db_session: Any, job_spec: dict[str, Any]
) -> None:
    from api.test_job_controls import finish, report
    from api.test_metrics import scrape

    webhook = register(client).json()
    parent = client.post("/v1/jobs", json={**job_spec, "control": True}).json()
    control_id = parent["control_job_id"]
    finish(db_session, control_id, JobStatus.SUCCEEDED, result=report(0.80, 0.50))
    finish(db_session, parent["id"], JobStatus.SUCCEEDED, result=report(0.86, 0.42))

    sent = {(d["job_id"], d["event_type"]): d["payload"]["data"] for d in deliveries(client, webhook["id"])}

    assert sent[(control_id, "job.queued")] == {
        "job_id": control_id,
        "status": "queued",
        "parent_id": parent["id"],
    }
    assert sent[(control_id, "job.succeeded")]["parent_id"] == parent["id"]
    ended = sent[(parent["id"], "job.succeeded")]["control"]
    assert (ended["job_id"], ended["status"], ended["split"]) == (control_id, "succeeded", "test")
    assert ended["gain"]["accuracy"] == pytest.approx(0.06)
    samples = scrape(anonymous_client)
    assert (
        samples[("distillery_webhook_deliveries", (("event_type", "job.succeeded"), ("outcome", "pending")))]
        == 2
    )
    assert (
        samples[("distillery_webhook_deliveries", (("event_type", "job.queued"), ("outcome", "pending")))]
        == 2
    )
