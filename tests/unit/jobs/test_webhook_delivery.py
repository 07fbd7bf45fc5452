"""The delivery state machine (retry schedule with jitter, 410, refusals) and the SSRF address rules."""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime, timedelta

import pytest

from jobs.domain.webhooks import (
    DEFAULT_SCHEDULE,
    Delivery,
    DeliveryState,
    Outcome,
    after_attempt,
    excerpt,
)
from servicekit.netguard import forbidden_address

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def pending() -> Delivery:
    return Delivery(
        id="d",
        job_id="j",
        owner="users/alice",
        event_id="evt_1",
        event_type="job.succeeded",
        event_time=NOW,
        body="{}",
        url="https://example.com/hook",
        state=DeliveryState.PENDING,
        create_time=NOW,
        update_time=NOW,
        next_attempt_time=NOW,
    )


def test_the_default_schedule_makes_eight_attempts_within_a_day() -> None:
    assert len(DEFAULT_SCHEDULE) + 1 == 8
    assert timedelta(hours=23) < timedelta(seconds=sum(DEFAULT_SCHEDULE)) < timedelta(hours=24)
    assert list(DEFAULT_SCHEDULE) == sorted(DEFAULT_SCHEDULE)


def test_failures_are_retried_with_growing_jittered_delays_until_the_schedule_ends() -> None:
    rng = random.Random(7)
    delivery, now, waits = pending(), NOW, []
    while not delivery.state.finished:
        delivery = after_attempt(delivery, Outcome(http_status=500), now, rng=rng)
        if delivery.next_attempt_time is not None:
            assert delivery.state is DeliveryState.RETRYING
            waits.append(delivery.next_attempt_time - now)
            now = delivery.next_attempt_time
    assert delivery.state is DeliveryState.FAILED
    assert delivery.attempt == 8
    assert delivery.next_attempt_time is None
    assert delivery.http_status == 500
    for wait, nominal in zip(waits, DEFAULT_SCHEDULE, strict=True):
        assert 0.8 * nominal <= wait.total_seconds() <= nominal
    assert now - NOW < timedelta(hours=24)
    jittered = {after_attempt(pending(), Outcome(http_status=500), NOW).next_attempt_time for _ in range(20)}
    assert len(jittered) > 1


@pytest.mark.parametrize(
    ("outcome", "state", "retried"),
    [
        (Outcome(http_status=204, latency=timedelta(milliseconds=5)), DeliveryState.SUCCEEDED, False),
        (Outcome(http_status=410), DeliveryState.FAILED, False),
        (
            Outcome(error_message="refused: 10.0.0.1 is a private address", refused=True),
            DeliveryState.FAILED,
            False,
        ),
        (Outcome(error_message="connect timeout after 5s"), DeliveryState.RETRYING, True),
        (Outcome(http_status=404), DeliveryState.RETRYING, True),
        (Outcome(http_status=302), DeliveryState.RETRYING, True),
    ],
)
def test_one_attempt_outcome(outcome: Outcome, state: DeliveryState, retried: bool) -> None:
    after = after_attempt(pending(), outcome, NOW, schedule=(1.0,))
    assert (after.state, after.attempt, after.last_attempt_time) == (state, 1, NOW)
    assert (after.next_attempt_time is not None) == retried
    assert (after.http_status, after.error_message, after.latency) == (
        outcome.http_status,
        outcome.error_message,
        outcome.latency,
    )


def test_the_response_excerpt_is_capped_and_decoded_with_replacements() -> None:
    assert excerpt(b"a" * 5000) == "a" * 1024
    assert excerpt(b"ok \xff") == "ok \ufffd"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:db8::1",
    ],
)
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_address(ipaddress.ip_address(address)) == ""
