"""The gateway with its authentication settings, on a real HTTP port, for the identity-at-the-edge tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from servicekit.settings import load
from tests.support.infra import free_port

PEERS = ("identity", "billing", "jobs", "inference", "drive-sync")


@dataclass
class RunningGateway:
    """A served gateway: its base URL and the application object (to look at its edge state)."""

    url: str
    app: FastAPI


def gateway_settings(identity_addr: str, redis_url: str, **extra: str) -> GatewaySettings:
    """Settings pointing at identity (other peers at a closed port) with cookies usable over plain HTTP."""
    dead = f"127.0.0.1:{free_port()}"
    env = {f"{name.upper().replace('-', '_')}_ADDR": dead for name in PEERS}
    env |= {
        "IDENTITY_ADDR": identity_addr,
        "REDIS_URL": redis_url,
        "COOKIE_SECURE": "false",
        "READINESS_TIMEOUT_SECONDS": "1",
        "BACKEND_TIMEOUT_SECONDS": "5",
        **{key.upper(): value for key, value in extra.items()},
    }
    return load(GatewaySettings, env)


@asynccontextmanager
async def running_edge(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """Serves the gateway for `settings` until the block ends."""
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield RunningGateway(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task
