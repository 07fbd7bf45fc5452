"""The shapes and hashing of API keys, session tokens and PKCE values."""

from __future__ import annotations

import base64
import hashlib
import re

from identity.domain import credentials


def test_a_new_api_key_has_the_documented_shape_and_parses_back() -> None:
    fresh = credentials.generate_api_key()
    assert re.fullmatch(r"cmfy_[0-9A-Za-z]{8}_[0-9A-Za-z]{43}", fresh.full)
    assert credentials.parse_api_key(fresh.full) == (fresh.prefix, fresh.secret)


def test_keys_are_random() -> None:
    keys = {credentials.generate_api_key().full for _ in range(200)}
    assert len(keys) == 200
    assert len({k[:13] for k in keys}) == 200, "prefixes are the lookup handle and must not collide"


def test_only_the_hash_of_the_secret_is_kept_and_it_matches() -> None:
    fresh = credentials.generate_api_key()
    assert fresh.secret_hash == hashlib.sha256(fresh.secret.encode()).digest()
    assert fresh.secret.encode() not in fresh.secret_hash
    assert credentials.matches(fresh.secret, fresh.secret_hash)
    assert not credentials.matches(
        fresh.secret[:-1] + ("A" if fresh.secret[-1] != "A" else "B"), fresh.secret_hash
    )
    assert not credentials.matches(fresh.secret, None)


def test_malformed_keys_are_refused_before_any_lookup() -> None:
    good = credentials.generate_api_key().full
    for bad in (
        "",
        good[:-1],
        good + "x",
        good.replace("cmfy_", "cmfx_"),
        good.replace("_", "-"),
        f"Bearer {good}",
    ):
        assert credentials.parse_api_key(bad) is None, bad


def test_session_tokens_are_43_base64url_characters() -> None:
    token = credentials.generate_session_token()
    assert credentials.is_session_token(token)
    assert not credentials.is_session_token(token + "=")
    assert not credentials.is_session_token("short")


def test_pkce_challenge_is_rfc7636_s256() -> None:
    # The example of RFC 7636 appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert credentials.pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    fresh = credentials.generate_oauth_value()
    assert 43 <= len(fresh) <= 128
    digest = base64.urlsafe_b64decode(credentials.pkce_challenge(fresh) + "=")
    assert digest == hashlib.sha256(fresh.encode()).digest()
