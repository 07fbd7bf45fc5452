"""A scripted browser: follows sign-in redirects by hand, keeps its cookies, reads what it was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from tests.support.databases import _plain

CLIENT_ID = "comfyapi-gateway-e2e"
CLIENT_SECRET = "gateway-e2e-client-secret-never-logged"


@dataclass
class SetCookie:
    """One Set-Cookie header, parsed."""

    value: str
    attributes: dict[str, str]


def set_cookies(reply: httpx.Response) -> dict[str, SetCookie]:
    """Every cookie a response sets, by name."""
    found = {}
    for header in reply.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            found[name] = SetCookie(morsel.value, {k: str(v) for k, v in morsel.items() if v})
    return found


@dataclass
class Browser:
    """Talks to the gateway like a browser: its own cookies (path-scoped ones by hand), manual redirects."""

    gateway: str
    cookies: dict[str, str] = field(default_factory=dict)
    oauth_state_cookie: str = ""

    def cookie_header(self, path: str) -> dict[str, str]:
        jar = dict(self.cookies)
        if self.oauth_state_cookie and path.startswith("/auth/google"):
            jar["comfyapi_oauth_state"] = self.oauth_state_cookie
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}

    def absorb(self, reply: httpx.Response) -> None:
        for name, cookie in set_cookies(reply).items():
            if name == "comfyapi_oauth_state":
                self.oauth_state_cookie = cookie.value
            elif cookie.value:
                self.cookies[name] = cookie.value
            else:
                self.cookies.pop(name, None)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.cookie_header(path), **kwargs.pop("headers", {})}
        async with httpx.AsyncClient(base_url=self.gateway) as http:
            reply = await http.request(method, path, headers=headers, **kwargs)
        self.absorb(reply)
        return reply

    async def begin(self, return_path: str = "/") -> httpx.Response:
        """GET /auth/google/login; returns the redirect to the provider."""
        reply = await self.request("GET", "/auth/google/login", params={"return_path": return_path})
        assert reply.status_code == 302, reply.text
        return reply

    async def consent(self, authorization_uri: str, sub: str) -> str:
        """Answers the provider's consent form as `sub`; returns the gateway callback path with its query."""
        async with httpx.AsyncClient() as http:
            answer = await http.post(authorization_uri, data={"sub": sub})
        assert answer.status_code == 302, answer.text
        callback = urlsplit(answer.headers["location"])
        assert f"{callback.scheme}://{callback.netloc}" == self.gateway
        return f"{callback.path}?{callback.query}"

    async def sign_in(self, sub: str, return_path: str = "/") -> httpx.Response:
        """The whole flow as `sub`; returns the callback's response."""
        begun = await self.begin(return_path)
        callback = await self.consent(begun.headers["location"], sub)
        return await self.request("GET", callback)

    @property
    def csrf(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.cookies["comfyapi_csrf"]}


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def define_user(provider_url: str, sub: str, **claims: Any) -> None:
    """A user at the OIDC provider with Google-like claims."""
    body = {"email": f"{sub}@example.com", "email_verified": True, "name": sub.title(), **claims}
    async with httpx.AsyncClient() as http:
        reply = await http.put(f"{provider_url}/users/{sub}", json=body)
    assert reply.status_code == 204, reply.text


async def sql(database_url: str, statement: str) -> Any:
    """One statement against the test database (to count rows or move a deadline into the past)."""
    connection = await asyncpg.connect(_plain(database_url))
    try:
        return await connection.fetch(statement)
    finally:
        await connection.close()


async def session_count(database_url: str) -> int:
    return int((await sql(database_url, "select count(*) from identity.sessions"))[0][0])
