"""Standard Webhooks signatures, secrets and their sealing, checked against the reference library."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from jobs.adapters.secret_cipher import AesGcmSecretCipher
from jobs.domain import webhook_secrets as secrets
from jobs.domain.webhook_secrets import KeyConfigError, parse_key_ring
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


def test_secrets_are_sealed_with_aes_gcm_bound_to_their_owner() -> None:
    ring = parse_key_ring((f"v1:{key(b'a')}",), "")
    assert ring is not None
    cipher = AesGcmSecretCipher(ring)
    secret = secrets.generate()
    sealed = cipher.seal(secret, "webhook_secrets/users/alice")
    assert sealed.startswith("v1:")
    assert secret not in sealed
    assert secret[6:] not in sealed
    assert cipher.seal(secret, "webhook_secrets/users/alice") != sealed  # a fresh nonce each time
    assert cipher.open(sealed, "webhook_secrets/users/alice") == secret
    with pytest.raises(errors.Internal) as raised:
        cipher.open(sealed, "webhook_secrets/users/bob")
    assert raised.value.reason == "WEBHOOK_SECRET_CORRUPT"
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(errors.Internal):
        cipher.open(tampered, "webhook_secrets/users/alice")

    rotated_ring = parse_key_ring((f"v1:{key(b'a')}", f"v2:{key(b'b')}"), "v2")
    assert rotated_ring is not None
    rotated = AesGcmSecretCipher(rotated_ring)
    assert rotated.open(sealed, "webhook_secrets/users/alice") == secret  # old values still open
    assert rotated.seal(secret, "b").startswith("v2:")
    retired_ring = parse_key_ring((f"v2:{key(b'b')}",), "")
    assert retired_ring is not None
    with pytest.raises(errors.Internal) as raised:
        AesGcmSecretCipher(retired_ring).open(sealed, "webhook_secrets/users/alice")
    assert raised.value.reason == "WEBHOOK_SECRET_KEY_UNKNOWN"


@pytest.mark.parametrize(
    ("entries", "active", "complaint"),
    [
        ((), "v1", "WEBHOOK_SECRET_KEYS is empty"),
        (("nocolon",), "", "<unique version>:<base64>"),
        ((f"v1:{key(b'a')}", f"v1:{key(b'b')}"), "", "<unique version>:<base64>"),
        (("v1:c2hvcnQ=",), "", "not base64 of 32 bytes"),
        ((f"v1:{key(b'a')}", f"v2:{key(b'b')}"), "", "must name one"),
        ((f"v1:{key(b'a')}",), "v9", "must name one"),
    ],
)
def test_a_malformed_key_ring_is_refused_without_showing_keys(
    entries: tuple[str, ...], active: str, complaint: str
) -> None:
    with pytest.raises(KeyConfigError) as raised:
        parse_key_ring(entries, active)
    assert complaint in str(raised.value)
    assert key(b"a") not in str(raised.value)


def test_no_keys_means_no_ring() -> None:
    assert parse_key_ring((), "") is None
