"""Helpers of the identity gRPC tests: principals in metadata, small loopback HTTP apps, a sign-in driver."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import grpc
import httpx
import pytest
from aiohttp import web

from comfyapi.identity.v1 import identity_service_pb2 as pb
from comfyapi.identity.v1 import identity_service_pb2_grpc as pb_grpc
from servicekit import auth, context, status
from servicekit.errors import DomainError
from tests.support.databases import _plain

GATEWAY = auth.service_principal("gateway")
DRIVE_SYNC = auth.service_principal("drive-sync")
CALLBACK = "http://127.0.0.1:8080/auth/google/callback"
CLIENT_ID = "comfyapi-test-client"
CLIENT_SECRET = "test-client-secret-do-not-log"


def new_vault_key(version: str) -> str:
    """A fresh VAULT_KEYS entry."""
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"


def as_(principal: context.Principal) -> list[tuple[str, str]]:
    """Call metadata carrying `principal`, as the gateway sends it."""
    return [(context.PRINCIPAL_KEY, principal.to_header())]


def user_principal(
    user: str, kind: str = auth.KIND_SESSION, scopes: frozenset[str] | None = None, cred: str = ""
) -> context.Principal:
    """A user principal; a session holds every scope unless told otherwise."""
    from identity.domain.scopes import ALL_SCOPES

    return context.Principal(
        subject=user,
        kind=kind,
        scopes=ALL_SCOPES if scopes is None else scopes,
        plan="free",
        credential_id=cred,
    )


async def refused(call: Any) -> DomainError:
    """The domain error a call fails with; fails the test if it succeeds."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return status.from_rpc_error(exc)
    pytest.fail("the call succeeded but should have been refused")


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serves an aiohttp app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def identity_stub(server_port: int) -> AsyncIterator[pb_grpc.IdentityServiceStub]:
    """A client of the identity service on `server_port`."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        yield pb_grpc.IdentityServiceStub(channel)


async def sql(database_url: str, statement: str, *args: Any) -> Any:
    """Runs one statement against the test database (to move time or inspect stored values)."""
    connection = await asyncpg.connect(_plain(database_url))
    try:
        return await connection.fetch(statement, *args)
    finally:
        await connection.close()


@dataclass
class Consent:
    """What the provider's consent step sent back to the callback."""

    code: str
    state: str
    authorization_uri: str


async def define_user(provider_url: str, sub: str, **claims: Any) -> None:
    """Defines a user at the OIDC provider stand-in with Google-like claims."""
    body = {"email": f"{sub}@example.com", "email_verified": True, "name": sub.title(), **claims}
    async with httpx.AsyncClient() as http:
        response = await http.put(f"{provider_url}/users/{sub}", json=body)
    assert response.status_code == 204, response.text


async def consent(stub: pb_grpc.IdentityServiceStub, sub: str, return_path: str = "") -> Consent:
    """Begins a sign-in and answers the provider's consent form as user `sub`, like a browser would."""
    begun = await stub.BeginGoogleSignIn(
        pb.BeginGoogleSignInRequest(redirect_uri=CALLBACK, return_path=return_path), metadata=as_(GATEWAY)
    )
    async with httpx.AsyncClient() as http:
        answer = await http.post(begun.authorization_uri, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [begun.state]
    return Consent(code=query["code"][0], state=begun.state, authorization_uri=begun.authorization_uri)


async def sign_in(stub: pb_grpc.IdentityServiceStub, sub: str) -> pb.CompleteGoogleSignInResponse:
    """A whole sign-in as `sub`; returns the completed sign-in."""
    given = await consent(stub, sub)
    return await stub.CompleteGoogleSignIn(
        pb.CompleteGoogleSignInRequest(
            code=given.code, state=given.state, user_agent="pytest", client_ip="127.0.0.1"
        ),
        metadata=as_(GATEWAY),
    )


async def run_command(database_url: str, redis_url: str, *args: str, **env: str) -> tuple[int, str, str]:
    """Runs `python -m identity ...` as an operator would; returns (exit code, stdout, stderr)."""
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        **{k.upper(): v for k, v in env.items()},
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "identity",
        *args,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()
