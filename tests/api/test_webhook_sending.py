"""One try of a delivery, made in this process against a receiver on loopback: timeouts, the try's
deadline, refused addresses, duplicate messages, the last try, the sweep, the backoff, and an endpoint's
concurrency limit and circuit breaker."""

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook
from webhook_receiver import Receiver, running_receiver

from app.core.base import utcnow
from app.webhooks.calling import EXCERPT_BYTES
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.sending import backoff_seconds, due_unsent, send_delivery
from app.webhooks.url_safety import UnsafeUrl, pinned_target

LENIENT = {"webhook_allow_http": True, "webhook_allow_private_addresses": True}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def delivery_to(
    make_client: Callable[..., Any], settings: Any, create_job: Callable[..., dict[str, Any]]
) -> Callable[[str], tuple[str, str]]:
    """Register a loopback receiver URL for `job.queued` and queue a job: returns (delivery id, secret)."""

    def arrange(url: str) -> tuple[str, str]:
        lenient = make_client(api_key=settings.dev_api_key, **LENIENT)
        webhook = lenient.post("/v1/webhooks", json={"url": url, "events": ["job.queued"]}).json()
        create_job()
        delivery = lenient.get(f"/v1/webhooks/{webhook['id']}/deliveries").json()["data"][0]
        return delivery["id"], webhook["secret"]

    return arrange


@pytest.fixture
def deliveries_to(
    make_client: Callable[..., Any], settings: Any, create_job: Callable[..., dict[str, Any]]
) -> Callable[[str, int], list[str]]:
    """Register one loopback receiver URL for `job.queued` and queue `count` jobs: its deliveries' ids."""

    def arrange(url: str, count: int) -> list[str]:
        lenient = make_client(api_key=settings.dev_api_key, **LENIENT)
        webhook = lenient.post("/v1/webhooks", json={"url": url, "events": ["job.queued"]}).json()
        for _ in range(count):
            create_job()
        deliveries = lenient.get(f"/v1/webhooks/{webhook['id']}/deliveries").json()["data"]
        return [delivery["id"] for delivery in reversed(deliveries)]

    return arrange


def stored(db_session: Any, delivery_id: str) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    db_session.expire_all()
    delivery = db_session.get(WebhookDelivery, delivery_id)
    attempts = db_session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id))
    return delivery, list(attempts)


def test_a_try_is_signed_and_a_500_is_kept_as_an_excerpt_and_retried_later(
    receiver: Receiver, delivery_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    receiver.failures["/hook"] = 1
    delivery_id, secret = delivery_to(f"{receiver.url}/hook")

    delay = send_delivery(delivery_id, settings=settings.model_copy(update=LENIENT))
    early = send_delivery(delivery_id, settings=settings.model_copy(update=LENIENT))

    [request] = receiver.on("/hook")
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == request.headers["webhook-id"] == delivery_id
    assert payload["type"] == "job.queued"
    delivery, [attempt] = stored(db_session, delivery_id)
    assert attempt.status_code == 500 and attempt.error is None and attempt.latency_ms >= 0
    assert attempt.response_excerpt is not None and len(attempt.response_excerpt) == EXCERPT_BYTES
    assert delivery.status == "pending" and delivery.tries == 1
    assert (
        delay is not None
        and settings.webhook_backoff_seconds / 2 <= delay <= settings.webhook_backoff_seconds
    )
    # A second message before the next try is due makes no call.
    assert early is None and len(receiver.on("/hook")) == 1


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_try(
    receiver: Receiver, delivery_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    receiver.delays["/slow"] = 3.0
    delivery_id, _ = delivery_to(f"{receiver.url}/slow")

    send_delivery(
        delivery_id, settings=settings.model_copy(update={**LENIENT, "webhook_timeout_seconds": 0.5})
    )

    _, [attempt] = stored(db_session, delivery_id)
    assert attempt.status_code is None and attempt.error is not None and "ReadTimeout" in attempt.error
    assert attempt.latency_ms < 2500


def test_a_dripping_receiver_is_cut_at_the_deadline_and_the_sweep_leaves_the_try_in_flight(
    receiver: Receiver, delivery_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    receiver.drips["/drip"] = 2.0  # each byte comes well within the 10 s read timeout
    delivery_id, _ = delivery_to(f"{receiver.url}/drip")
    bounded = settings.model_copy(
        update={**LENIENT, "webhook_deadline_seconds": 1.5, "webhook_sweep_seconds": 0.1}
    )
    sender = threading.Thread(target=send_delivery, args=(delivery_id,), kwargs={"settings": bounded})
    sender.start()
    receiver.wait_for("/drip", 1, timeout=5)
    # Its due time long past, as a try that outlived a fixed hold would leave it: the lease still runs.
    db_session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(next_attempt_at=utcnow() - timedelta(minutes=5))
    )
    db_session.commit()
    swept_in_flight = due_unsent(settings=bounded, now=utcnow())
    sender.join(timeout=5)

    delivery, [attempt] = stored(db_session, delivery_id)
    assert swept_in_flight == [] and not sender.is_alive()
    assert attempt.error is not None and attempt.error.startswith("DeadlinePassed")
    assert 1400 <= attempt.latency_ms <= 2000
    assert delivery.sending_until is None and delivery.status == "pending" and delivery.tries == 1


def test_an_endpoint_at_its_limit_postpones_a_delivery_without_using_a_try(
    receiver: Receiver, deliveries_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    receiver.hangs.add("/busy")
    first, second = deliveries_to(f"{receiver.url}/busy", 2)
    one_at_a_time = settings.model_copy(
        update={**LENIENT, "webhook_deadline_seconds": 1.0, "webhook_endpoint_concurrency": 1}
    )
    sender = threading.Thread(target=send_delivery, args=(first,), kwargs={"settings": one_at_a_time})
    sender.start()
    receiver.wait_for("/busy", 1, timeout=5)

    asked_at = utcnow()
    wait = send_delivery(second, settings=one_at_a_time)
    postponed, attempts = stored(db_session, second)
    sender.join(timeout=5)

    assert wait is not None and wait > 0 and attempts == [] and postponed.tries == 0
    assert postponed.status == "pending" and postponed.next_attempt_at >= asked_at + timedelta(seconds=wait)
    assert len(receiver.on("/busy")) == 1


def test_failed_tries_open_the_circuit_and_a_probe_that_succeeds_closes_it(
    receiver: Receiver, deliveries_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    receiver.failures["/down"] = 1
    first, second = deliveries_to(f"{receiver.url}/down", 2)
    fragile = settings.model_copy(
        update={**LENIENT, "webhook_circuit_failures": 1, "webhook_circuit_open_seconds": 0.5}
    )

    send_delivery(first, settings=fragile)
    wait = send_delivery(second, settings=fragile)
    opened = db_session.get(WebhookEndpoint, stored(db_session, first)[0].endpoint_id)
    open_until, failures = opened.circuit_open_until, opened.consecutive_failures
    time.sleep(wait or 0)
    probe = send_delivery(second, settings=fragile)

    delivery, [attempt] = stored(db_session, second)
    endpoint = db_session.get(WebhookEndpoint, delivery.endpoint_id)
    assert failures == 1 and open_until is not None and wait is not None and 0.5 <= wait <= 1.0
    assert len(receiver.on("/down")) == 2  # the postponed delivery made no call while the circuit was open
    assert probe is None and attempt.status_code == 200 and delivery.status == "succeeded"
    assert endpoint.circuit_open_until is None and endpoint.consecutive_failures == 0


def test_an_address_refused_when_sending_is_never_called(
    receiver: Receiver, delivery_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    delivery_id, _ = delivery_to(f"{receiver.url}/hook")

    send_delivery(delivery_id, settings=settings.model_copy(update={"webhook_allow_http": True}))

    _, [attempt] = stored(db_session, delivery_id)
    assert attempt.status_code is None and "127.0.0.1 is a loopback" in (attempt.error or "")
    assert receiver.on("/hook") == []


def test_the_last_allowed_try_fails_the_delivery(
    receiver: Receiver, delivery_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    receiver.failures["/hook"] = 5
    delivery_id, _ = delivery_to(f"{receiver.url}/hook")
    two_tries = settings.model_copy(update={**LENIENT, "webhook_max_attempts": 2})

    first = send_delivery(delivery_id, settings=two_tries)
    db_session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(next_attempt_at=utcnow())
    )
    db_session.commit()
    last = send_delivery(delivery_id, settings=two_tries)

    delivery, attempts = stored(db_session, delivery_id)
    assert first is not None and last is None
    assert [a.number for a in attempts] == [1, 2] and delivery.status == "failed"
    assert delivery.finished_at is not None and delivery.next_attempt_at is None


def test_the_sweep_takes_only_deliveries_due_for_longer_than_its_interval(
    delivery_to: Callable[..., Any], settings: Any, db_session: Any
) -> None:
    late, _ = delivery_to("http://127.0.0.1:9/late")
    fresh, _ = delivery_to("http://127.0.0.1:9/fresh")
    long_ago = utcnow() - timedelta(seconds=settings.webhook_sweep_seconds + 1)
    db_session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == late).values(next_attempt_at=long_ago)
    )
    db_session.commit()

    now = utcnow()
    swept = due_unsent(settings=settings, now=now)

    assert swept == [late]
    assert due_unsent(settings=settings, now=now) == []  # its message was just sent: not again


def test_the_backoff_doubles_up_to_its_cap_with_half_of_it_random() -> None:
    rng = random.Random(7)
    waits = [backoff_seconds(tries, base=10, cap=60, rng=rng) for tries in range(1, 7)]

    for tries, wait in enumerate(waits, start=1):
        full = min(60, 10 * 2 ** (tries - 1))
        assert full / 2 <= wait <= full
    assert len(set(waits)) == len(waits)


def test_a_call_goes_to_the_checked_address_under_the_original_name() -> None:
    ipv6 = pinned_target("https://[2606:4700::1111]:8443/a?b=1", allow_http=False, allow_private=False)
    local = pinned_target("http://localhost:8080/hook?x=1", allow_http=True, allow_private=True)

    assert ipv6.url == "https://[2606:4700::1111]:8443/a?b=1"
    assert ipv6.host_header == "[2606:4700::1111]:8443"
    assert local.url in ("http://127.0.0.1:8080/hook?x=1", "http://[::1]:8080/hook?x=1")
    assert local.host_header == "localhost:8080" and local.extensions == {}
    with pytest.raises(UnsafeUrl, match="localhost resolves to"):
        pinned_target("http://localhost/hook", allow_http=True, allow_private=False)
