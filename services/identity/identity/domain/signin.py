"""Rules of Google sign-in that need no network: redirect URIs, return paths, and the ID token's claims."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from servicekit import errors

LOOPBACK_HOSTS = frozenset({"localhost"})
MAX_RETURN_PATH = 2048


@dataclass(frozen=True)
class GoogleProfile:
    """Who signed in, from a verified ID token."""

    subject: str
    email: str
    name: str
    picture: str


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: str, allowed: tuple[str, ...]) -> str:
    """Accepts `uri` when it is on the allow-list, or, with no allow-list, HTTPS or plain HTTP on loopback."""
    parts = urlsplit(uri)
    acceptable = bool(parts.netloc) and not parts.fragment
    if allowed:
        acceptable = acceptable and uri in allowed
    else:
        acceptable = acceptable and (
            parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname or ""))
        )
    if not acceptable:
        raise errors.InvalidArgument(
            "redirect_uri is not an allowed callback URL"
            + ("" if allowed else " (HTTPS, or HTTP on loopback, without a fragment)"),
            reason="REDIRECT_URI_NOT_ALLOWED",
            violations=(errors.FieldViolation("redirect_uri", "not an allowed callback URL"),),
        )
    return uri


def clean_return_path(path: str) -> str:
    """A site-relative path to send the browser to after sign-in; "/" by default.

    Anything that could leave the site (`//host`, `/\\host`, a scheme) is refused, so sign-in is no open
    redirect.
    """
    if not path:
        return "/"
    if (
        not path.startswith("/")
        or path.startswith(("//", "/\\"))
        or len(path) > MAX_RETURN_PATH
        or any(ch.isspace() or ord(ch) < 0x20 for ch in path)
    ):
        raise errors.InvalidArgument(
            "return_path must be a site-relative path such as /dashboard",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation("return_path", "must be a site-relative path"),),
        )
    return path


def _invalid(message: str) -> errors.Unauthenticated:
    return errors.Unauthenticated(message, reason="ID_TOKEN_INVALID")


def profile_from_claims(claims: Mapping[str, Any], allowed_domains: tuple[str, ...]) -> GoogleProfile:
    """The signed-in person from verified ID token claims, enforcing a verified email and the domain rule."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid("the ID token has no subject")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise errors.Unauthenticated("the Google account has no email address", reason="EMAIL_NOT_VERIFIED")
    if claims.get("email_verified") not in (True, "true"):
        raise errors.Unauthenticated(
            "the Google account's email address is not verified", reason="EMAIL_NOT_VERIFIED"
        )
    if allowed_domains:
        domain = claims.get("hd")
        if domain not in allowed_domains:
            raise errors.PermissionDenied(
                "this Google account is not in a domain allowed to sign in",
                reason="DOMAIN_NOT_ALLOWED",
                metadata={"domain": str(domain or "")},
            )
    name = claims.get("name")
    picture = claims.get("picture")
    return GoogleProfile(
        subject=subject,
        email=email.strip().lower(),
        name=name.strip()[:100] if isinstance(name, str) and name.strip() else email.split("@")[0][:100],
        picture=picture if isinstance(picture, str) and picture.startswith("https://") else "",
    )
