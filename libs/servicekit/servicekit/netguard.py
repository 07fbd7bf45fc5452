"""Server-side request forgery guards for URLs the platform calls on a user's behalf.

Webhook targets (jobs) and input images fetched by URL (gateway) follow the same rules: only http(s), no
internal host names, and every address a name resolves to must be public unless the host is allow-listed.
A caller resolves a name once, checks every address, then connects to the checked address itself (`pinned`),
so a DNS answer that changes between the check and the connection (rebinding) cannot steer the request inside
the platform. Only the standard library is used, so domain packages may depend on this module.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal")


def forbidden_target(url: str, allowed_hosts: frozenset[str], require_https: bool = True) -> str:
    """Why `url` may not be called from inside the platform, or an empty string when it may.

    Names are judged here only by their spelling; their addresses must be checked with `forbidden_address`
    once resolved. With `require_https`, plain http is accepted for allow-listed hosts only.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return "use an absolute https URL" if require_https else "use an absolute http or https URL"
    if host in allowed_hosts:
        return ""
    if require_https and parts.scheme != "https":
        return "use https (plain http only for allow-listed hosts)"
    if host == "localhost" or host.endswith(INTERNAL_SUFFIXES):
        return f"{host} is an internal host name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ""  # a name; its addresses are checked once resolved
    return "" if address.is_global and not forbidden_address(address) else f"{host} is not a public address"


def forbidden_address(address: Address) -> str:
    """Why `address` may not be reached, or an empty string when it may.

    IPv4 addresses embedded in IPv6 (mapped, 6to4, Teredo) are judged as the IPv4 address they reach.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            reason = forbidden_address(embedded)
            return f"{address} embeds {reason}" if reason else ""
    kinds = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
    )
    for kind, matches in kinds:
        if matches:
            return f"{address} is a {kind} address"
    return "" if address.is_global else f"{address} is not a public address"


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to, through the system resolver, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def pinned(url: str, address: Address) -> str:
    """`url` aimed at `address`, keeping any user info (httpx turns it into Basic credentials)."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{userinfo}{at}{host}:{parts.port}" if parts.port else f"{userinfo}{at}{host}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def preferred(addresses: list[Address]) -> Address:
    """The address to connect to: IPv4 first, since IPv6 is often unrouted inside pods."""
    return min(addresses, key=lambda a: a.version)
