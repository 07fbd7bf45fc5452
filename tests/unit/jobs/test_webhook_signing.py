"""Standard Webhooks signatures, secrets and their sealing, checked against the reference library."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from jobs.domain import webhook_secrets as secrets
from servicekit import errors

BODY = '{"eventId":"evt_1","type":"job.succeeded","job":{"name":"jobs/x","state":"JOB_STATE_SUCCEEDED"}}'


def key(fill: bytes) -> str:
    return base64.b64encode(fill * 32).decode()


def headers(signature: str, timestamp: int, message_id: str = "evt_1") -> dict[str, str]:
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_a_signature_verifies_with_the_reference_library_and_matches_its_own() -> None:
    secret = secrets.generate()
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = int(now.timestamp())
    ours = secrets.sign(secret, "evt_1", stamp, BODY)
    assert ours == Webhook(secret).sign("evt_1", now, BODY)
    assert Webhook(secret).verify(BODY, headers(ours, stamp))["type"] == "job.succeeded"
    for changed in (
        headers(ours, stamp, message_id="evt_2"),
        headers(ours, stamp + 1),
        headers(secrets.sign(secrets.generate(), "evt_1", stamp, BODY), stamp),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY, changed)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("SUCCEEDED", "FAILED"), headers(ours, stamp))


def test_during_a_rotation_each_secret_verifies_its_own_entry_of_the_header() -> None:
    new, old = secrets.generate(), secrets.generate()
    stamp = int(datetime.now(UTC).timestamp())
    header = secrets.signature_header([new, old], "evt_1", stamp, BODY)
    first, second = header.split(" ")
    Webhook(new).verify(BODY, headers(first, stamp))
    Webhook(old).verify(BODY, headers(second, stamp))
    Webhook(old).verify(BODY, headers(header, stamp))
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, headers(first, stamp))
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(BODY, headers(second, stamp))


def test_secrets_are_random_and_shown_masked() -> None:
    secret = secrets.generate()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert secret != secrets.generate()
    assert secrets.mask(secret) == "whsec_…" + secret[-4:]


def test_the_grace_period_defaults_to_a_day_and_stays_within_a_week() -> None:
    assert secrets.grace_period(None) == timedelta(hours=24)
    assert secrets.grace_period(timedelta(0)) == timedelta(0)
    assert secrets.grace_period(timedelta(days=7)) == timedelta(days=7)
    for bad in (timedelta(days=7, seconds=1), timedelta(seconds=-1)):
        with pytest.raises(errors.InvalidArgument) as raised:
            secrets.grace_period(bad)
        assert raised.value.reason == "GRACE_PERIOD_INVALID"
