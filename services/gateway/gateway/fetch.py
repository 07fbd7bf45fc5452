"""Fetching input images given by URL, guarded against server-side request forgery.

The host name is resolved once and every address it resolves to must be public unless the host is
allow-listed (servicekit.netguard); the connection then goes to the checked address itself with the original
Host header and TLS server name, so a DNS answer that changes in between cannot steer it inside the platform.
Redirects are followed by hand, a few at most, each target checked the same way. The body is read as a stream
and abandoned as soon as it passes the size limit; connect and read have timeouts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from gateway.errors import EdgeError, violation
from servicekit import errors
from servicekit.netguard import Address, forbidden_address, forbidden_target, pinned, preferred, resolve

Resolver = Callable[[str, int], Awaitable[list[Address]]]
MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class Fetched:
    """A downloaded body with what the server said about it."""

    data: bytes
    content_type: str
    filename: str


def _refused(field: str, reason: str, description: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"{field}: {description}", reason=reason, violations=violation(field, description)
    )


class UrlFetcher:
    """Downloads one URL per call within the limits it was built with."""

    def __init__(
        self,
        allowed_hosts: frozenset[str],
        max_bytes: int,
        timeout_seconds: float,
        resolver: Resolver = resolve,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.max_bytes = max_bytes
        self.resolver = resolver
        self.timeout = httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
        self.client = httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect to the unchecked name
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(self, url: str, field: str) -> Fetched:
        """The body at `url`; INVALID_ARGUMENT naming `field` when it is forbidden, unreachable or too big."""
        if len(url) > MAX_URL_LENGTH:
            raise _refused(field, "INPUT_URL_INVALID", f"at most {MAX_URL_LENGTH} characters")
        for _ in range(MAX_REDIRECTS + 1):
            address, host = await self._checked(url, field)
            response = await self._open(url, address, host, field)
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise _refused(
                        field, "INPUT_URL_UNREACHABLE", f"the server answered HTTP {response.status_code}"
                    )
                data = await self._body(response, field)
                content_type = response.headers.get("content-type", "")
                return Fetched(data, content_type, PurePosixPath(unquote(urlsplit(url).path)).name)
            finally:
                await response.aclose()
        raise _refused(field, "INPUT_URL_UNREACHABLE", f"more than {MAX_REDIRECTS} redirects")

    async def _checked(self, url: str, field: str) -> tuple[Address, str]:
        if reason := forbidden_target(url, self.allowed_hosts, require_https=False):
            raise _refused(field, "INPUT_URL_FORBIDDEN", reason)
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            raise _refused(field, "INPUT_URL_UNREACHABLE", f"could not resolve {host}: {exc}"[:200]) from None
        if not addresses:
            raise _refused(field, "INPUT_URL_UNREACHABLE", f"{host} resolves to no address")
        if host not in self.allowed_hosts:
            for address in addresses:
                if reason := forbidden_address(address):
                    raise _refused(field, "INPUT_URL_FORBIDDEN", f"{host} resolves to {reason}")
        return preferred(addresses), host

    async def _open(self, url: str, address: Address, host: str, field: str) -> httpx.Response:
        parts = urlsplit(url)
        request = self.client.build_request(
            "GET",
            pinned(url, address),
            headers={"host": parts.netloc.rpartition("@")[2], "accept": "image/*"},
            extensions={"sni_hostname": host} if parts.scheme == "https" else {},
        )
        try:
            return await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise _refused(field, "INPUT_URL_UNREACHABLE", "timed out connecting") from None
        except httpx.HTTPError as exc:
            raise _refused(field, "INPUT_URL_UNREACHABLE", f"{type(exc).__name__}: {exc}"[:200]) from None

    async def _body(self, response: httpx.Response, field: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise _too_large(field, self.max_bytes)
        chunks, size = [], 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise _too_large(field, self.max_bytes)
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise _refused(field, "INPUT_URL_UNREACHABLE", f"{type(exc).__name__} while reading") from None
        return b"".join(chunks)


def _too_large(field: str, limit: int) -> EdgeError:
    return EdgeError(
        400,
        f"{field}: the image is larger than the limit of {limit} bytes",
        reason="INPUT_URL_TOO_LARGE",
        metadata={"limit_bytes": str(limit)},
        violations=violation(field, f"at most {limit} bytes"),
    )
