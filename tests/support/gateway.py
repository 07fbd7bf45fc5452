"""The gateway on a real HTTP port in the test process, pointed at services on real gRPC ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from servicekit.settings import load
from tests.support.infra import free_port


@asynccontextmanager
async def running_gateway(addresses: dict[str, str]) -> AsyncIterator[str]:
    """Serves the gateway until the block ends; yields its base URL."""
    port = free_port()
    env = {f"{name.upper().replace('-', '_')}_ADDR": address for name, address in addresses.items()}
    settings = load(
        GatewaySettings,
        {**env, "HTTP_PORT": str(port), "READINESS_TIMEOUT_SECONDS": "1", "BACKEND_TIMEOUT_SECONDS": "3"},
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
