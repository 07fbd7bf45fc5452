"""Sign-in rules that need no network: callback URLs, return paths and ID token claims."""

from __future__ import annotations

from typing import Any

import pytest

from identity.domain.signin import check_redirect_uri, clean_return_path, profile_from_claims
from servicekit import errors

CLAIMS: dict[str, Any] = {
    "sub": "1234",
    "email": "Ada@Example.com",
    "email_verified": True,
    "name": "Ada",
    "picture": "https://lh3.googleusercontent.com/a/x",
    "hd": "example.com",
}


def test_without_an_allow_list_https_and_loopback_http_callbacks_are_accepted() -> None:
    for uri in (
        "https://app.example.com/auth/google/callback",
        "http://127.0.0.1:8080/cb",
        "http://localhost/cb",
    ):
        assert check_redirect_uri(uri, ()) == uri
    for uri in (
        "http://evil.example.com/cb",
        "https://app.example.com/cb#frag",
        "javascript:alert(1)",
        "/cb",
    ):
        with pytest.raises(errors.InvalidArgument) as raised:
            check_redirect_uri(uri, ())
        assert raised.value.reason == "REDIRECT_URI_NOT_ALLOWED"
        assert raised.value.violations[0].field == "redirect_uri"


def test_with_an_allow_list_only_listed_callbacks_are_accepted() -> None:
    allowed = ("https://app.example.com/auth/google/callback",)
    assert check_redirect_uri(allowed[0], allowed) == allowed[0]
    with pytest.raises(errors.InvalidArgument):
        check_redirect_uri("https://app.example.com/other", allowed)


def test_return_paths_stay_on_the_site() -> None:
    assert clean_return_path("") == "/"
    assert clean_return_path("/dashboard?tab=keys") == "/dashboard?tab=keys"
    for bad in ("//evil.example.com", "/\\evil.example.com", "https://evil.example.com", "dashboard", "/a b"):
        with pytest.raises(errors.InvalidArgument):
            clean_return_path(bad)


def test_a_verified_profile_is_read_from_the_claims() -> None:
    profile = profile_from_claims(CLAIMS, ())
    assert (profile.subject, profile.email, profile.name) == ("1234", "ada@example.com", "Ada")
    assert profile.picture.startswith("https://")
    assert profile_from_claims({**CLAIMS, "picture": "http://insecure/x"}, ()).picture == ""


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"email_verified": False}, "EMAIL_NOT_VERIFIED"),
        ({"email_verified": None}, "EMAIL_NOT_VERIFIED"),
        ({"email": None}, "EMAIL_NOT_VERIFIED"),
        ({"sub": ""}, "ID_TOKEN_INVALID"),
    ],
)
def test_unverified_or_incomplete_identities_are_refused(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(errors.Unauthenticated) as raised:
        profile_from_claims({**CLAIMS, **change}, ())
    assert raised.value.reason == reason


def test_the_domain_rule_admits_only_listed_workspace_domains() -> None:
    assert profile_from_claims(CLAIMS, ("example.com",)).subject == "1234"
    for claims in ({**CLAIMS, "hd": "other.com"}, {k: v for k, v in CLAIMS.items() if k != "hd"}):
        with pytest.raises(errors.PermissionDenied) as raised:
            profile_from_claims(claims, ("example.com",))
        assert raised.value.reason == "DOMAIN_NOT_ALLOWED"
