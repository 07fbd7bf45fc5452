"""Sending webhook POSTs with httpx, checked against SSRF at the moment of sending.

The target's host name is resolved once; every address it resolves to must be public (unless the host is
allow-listed), and the request then goes to the checked address itself, with the original Host header and TLS
server name, so a DNS answer that changes between the check and the connection (rebinding) cannot steer the
request inside the platform. Redirects are not followed, connections are not reused across requests (a pooled
TLS connection must never serve another host name), and only the first 1,024 bytes of a response are read.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from jobs.domain.webhooks import EXCERPT_BYTES, Outcome, excerpt
from servicekit.netguard import Address, forbidden_address, forbidden_target, pinned, preferred, resolve

Resolver = Callable[[str, int], Awaitable[list[Address]]]


def _describe(exc: httpx.HTTPError, timeout: httpx.Timeout) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timeout after {timeout.connect}s"
    if isinstance(exc, httpx.ReadTimeout):
        return f"read timeout after {timeout.read}s"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out sending the request"
    return f"{type(exc).__name__}: {exc}"[:300]


class HttpPoster:
    """The webhook sender's HTTP client."""

    def __init__(
        self,
        allowed_hosts: frozenset[str] = frozenset(),
        timeout_seconds: float = 10.0,
        resolver: Resolver = resolve,
        verify: bool | str = True,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.resolver = resolver
        self.timeout = httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
        self.client = httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect to the unchecked name
            limits=httpx.Limits(max_keepalive_connections=0),
            verify=verify,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Sends one attempt; never raises (every failure is described in the outcome)."""
        if reason := forbidden_target(url, self.allowed_hosts):
            return Outcome(error_message=f"refused: {reason}", refused=True)
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            return Outcome(error_message=f"could not resolve {host}: {exc}"[:300])
        if not addresses:
            return Outcome(error_message=f"{host} resolves to no address")
        if host not in self.allowed_hosts:
            for address in addresses:
                if reason := forbidden_address(address):
                    return Outcome(error_message=f"refused: {host} resolves to {reason}", refused=True)
        address = preferred(addresses)
        return await self._send(url, address, parts.netloc.rpartition("@")[2], host, headers, body)

    async def _send(
        self, url: str, address: Address, netloc: str, host: str, headers: Mapping[str, str], body: bytes
    ) -> Outcome:
        request = self.client.build_request(
            "POST",
            pinned(url, address),
            headers={**headers, "host": netloc},
            content=body,
            extensions={"sni_hostname": host} if url.startswith("https:") else {},
        )
        started = time.perf_counter()
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return Outcome(error_message=_describe(exc, self.timeout))
        latency = timedelta(seconds=time.perf_counter() - started)
        head = b""
        try:
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= EXCERPT_BYTES:
                    break
        except httpx.HTTPError:
            pass  # the status counts; a body cut short only shortens the excerpt
        finally:
            await response.aclose()
        return Outcome(http_status=response.status_code, latency=latency, response_excerpt=excerpt(head))
