"""Fixtures of the identity gRPC tests: a real OIDC provider on loopback, the identity service on a real port.

The provider is the `oidc-provider-mock` package (a real OpenID Connect provider built on authlib), run
in-process on a free loopback port; its issuer is the URL it is reached at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from oidc_provider_mock import run_server_in_thread

from comfyapi.identity.v1 import identity_service_pb2_grpc as pb_grpc
from servicekit.server import GrpcServer
from tests.grpc.identity.helpers import CLIENT_ID, CLIENT_SECRET, identity_stub, new_vault_key
from tests.support.servers import running_service


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[str]:
    """The base URL (and issuer) of a real OIDC provider on loopback."""
    with pytest.MonkeyPatch.context() as patch:
        # The provider refuses plain HTTP unless told that this is a test on loopback.
        patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
        with run_server_in_thread(port=0) as server:
            yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="session")
def vault_keys() -> tuple[str, str]:
    """Two vault keys, v1 and v2, for this session."""
    return new_vault_key("v1"), new_vault_key("v2")


@dataclass
class Identity:
    """A running identity service and a client of it."""

    server: GrpcServer
    stub: pb_grpc.IdentityServiceStub
    database_url: str
    redis_url: str


def google_settings(issuer: str, **extra: str) -> dict[str, str]:
    """Settings pointing identity's Google sign-in at `issuer`."""
    return {
        "google_issuer": issuer,
        "google_client_id": CLIENT_ID,
        "google_client_secret": CLIENT_SECRET,
        **extra,
    }


@pytest.fixture
async def identity(
    database_url: str, clean_redis: str, oidc_provider: str, vault_keys: tuple[str, str]
) -> AsyncIterator[Identity]:
    """The identity service, Google sign-in against the provider stand-in, the vault with key v1."""
    settings = google_settings(oidc_provider, vault_keys=vault_keys[0], outbox_interval_seconds="0.1")
    async with (
        running_service("identity", database_url, clean_redis, **settings) as server,
        identity_stub(server.port) as stub,
    ):
        yield Identity(server, stub, database_url, clean_redis)
