"""Secrets at rest: key ring settings, AES-GCM envelopes, tamper detection, key versions and rotation."""

from __future__ import annotations

import base64
import os

import pytest

from servicekit import errors, sealing
from servicekit.sealing import KeyRing, KeyRingError, Sealer, version_of


def parse_key_ring(keys: tuple[str, ...], active: str) -> KeyRing | None:
    return sealing.parse_key_ring(
        keys, active, keys_setting="VAULT_KEYS", active_setting="VAULT_ACTIVE_KEY", reason_prefix="VAULT"
    )


def unpack(envelope: str) -> tuple[str, bytes, bytes]:
    version, _, encoded = envelope.partition(":")
    raw = base64.urlsafe_b64decode(encoded)
    return version, raw[: sealing.NONCE_BYTES], raw[sealing.NONCE_BYTES :]


def key_entry(version: str) -> str:
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"


def test_no_keys_means_the_vault_is_disabled() -> None:
    assert parse_key_ring((), "") is None


@pytest.mark.parametrize(
    ("keys", "active", "complaint"),
    [
        (("v1",), "", "must look like"),
        (("v1:" + base64.b64encode(b"short").decode(),), "", "exactly 32 bytes"),
        (("v1:not base64!",), "", "exactly 32 bytes"),
        ((key_entry("v1"), key_entry("v2")), "", "must name one"),
        ((key_entry("v1"),), "v9", "not one of"),
        ((key_entry("v1"), key_entry("v1")), "v1", "twice"),
        ((), "v1", "VAULT_KEYS is empty"),
    ],
)
def test_malformed_key_configuration_is_refused_without_echoing_keys(
    keys: tuple[str, ...], active: str, complaint: str
) -> None:
    with pytest.raises(KeyRingError) as raised:
        parse_key_ring(keys, active)
    assert complaint in str(raised.value)
    for entry in keys:
        secret = entry.partition(":")[2]
        assert not secret or secret not in str(raised.value)


def test_a_single_key_is_active_by_default_and_seals_round_trip() -> None:
    ring = parse_key_ring((key_entry("v1"),), "")
    assert ring is not None
    assert ring.active == "v1"
    cipher = Sealer(ring)
    envelope = cipher.seal("1//refresh-token", "grants/a/refresh_token")
    assert envelope.startswith("v1:")
    assert "refresh-token" not in envelope
    assert cipher.open(envelope, "grants/a/refresh_token") == "1//refresh-token"
    assert cipher.seal("same", "b") != cipher.seal("same", "b"), "every seal uses a fresh nonce"


def test_a_tampered_or_moved_envelope_does_not_open() -> None:
    ring = parse_key_ring((key_entry("v1"),), "")
    assert ring is not None
    cipher = Sealer(ring)
    envelope = cipher.seal("secret", "grants/a/refresh_token")
    version, nonce, sealed = unpack(envelope)
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    tampered = f"{version}:{base64.urlsafe_b64encode(nonce + flipped).decode()}"
    for bad, binding in ((tampered, "grants/a/refresh_token"), (envelope, "grants/b/refresh_token")):
        with pytest.raises(errors.Internal) as raised:
            cipher.open(bad, binding)
        assert raised.value.reason == "VAULT_DECRYPT_FAILED"
    with pytest.raises(errors.Internal) as garbage:
        cipher.open("v1:AAAA", "grants/a/refresh_token")
    assert garbage.value.reason == "VAULT_ENVELOPE_INVALID"


def test_old_keys_still_open_after_a_new_key_becomes_active_and_resealing_moves_values() -> None:
    v1, v2 = key_entry("v1"), key_entry("v2")
    old_ring = parse_key_ring((v1,), "")
    new_ring = parse_key_ring((v1, v2), "v2")
    assert old_ring is not None
    assert new_ring is not None
    old, new = Sealer(old_ring), Sealer(new_ring)
    envelope = old.seal("token", "bind")
    assert new.open(envelope, "bind") == "token"
    assert new.needs_reseal(envelope)
    assert not old.needs_reseal(envelope)
    resealed = new.seal(new.open(envelope, "bind"), "bind")
    assert version_of(resealed) == "v2"
    assert not new.needs_reseal(resealed)
    with pytest.raises(errors.Internal) as raised:
        old.open(resealed, "bind")
    assert raised.value.reason == "VAULT_KEY_UNKNOWN"
    assert "v2" in raised.value.message
