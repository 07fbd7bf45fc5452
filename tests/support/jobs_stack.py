"""The whole API product on real ports: identity, billing, inference (with its local runtime), jobs and the
gateway, sharing one PostgreSQL database, one Redis and one storage directory, as the local stack runs them.

API keys are issued through identity's own use cases (what `python -m identity create-user` runs).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from identity.bootstrap import components
from identity.domain.scopes import ALL_SCOPES
from servicekit.server import GrpcServer
from tests.support.edge_gateway import RunningGateway, gateway_settings, running_edge
from tests.support.servers import running_service, service_settings

PLAN = {"plan_id": "e2e", "display_name": "E2E", "description": "Roomy.", "monthly_job_quota": 100_000}


@dataclass
class JobsStack:
    """The running services, the gateway's URL and the storage folder they share."""

    database_url: str
    redis_url: str
    storage: Path
    servers: dict[str, GrpcServer]
    gateway: RunningGateway
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.url

    async def api_key(self, email: str, scopes: list[str] | None = None) -> str:
        """A new API key of the user with `email` (created on first use) holding `scopes` (default: all)."""
        parts = components(service_settings("identity", self.database_url, self.redis_url))
        try:
            user, _ = await parts.services.users.ensure(email, email.split("@")[0])
            issued = await parts.services.api_keys.issue(user.id, "e2e", sorted(scopes or ALL_SCOPES), None)
        finally:
            await parts.close()
        return issued.key

    def client(self, key: str = "", **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client of the gateway sending `key` as its bearer credential."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60, **kwargs)


def secret_key() -> str:
    """A sealing key for webhook secrets, in the `v1:<base64>` form jobs reads."""
    return f"v1:{base64.b64encode(os.urandom(32)).decode()}"


@asynccontextmanager
async def running_jobs_stack(
    database_url: str,
    redis_url: str,
    folder: Path,
    jobs: dict[str, str] | None = None,
    gateway: dict[str, str] | None = None,
) -> AsyncIterator[JobsStack]:
    """Starts every service of the API product; `jobs` and `gateway` add or override settings."""
    storage = folder / "storage"
    (folder / "plans.json").write_text(json.dumps([PLAN]))
    async with AsyncExitStack() as stack:

        async def start(name: str, **extra: str) -> GrpcServer:
            return await stack.enter_async_context(running_service(name, database_url, redis_url, **extra))

        identity = await start("identity")
        billing = await start("billing", plans_file=str(folder / "plans.json"), default_plan="e2e")
        inference = await start(
            "inference",
            storage_dir=str(storage),
            runtime_data_dir=str(folder / "runtime"),
            probe_interval_seconds="0.3",
            comfyui_silence_seconds="2",
        )
        addresses = {
            "billing_addr": f"127.0.0.1:{billing.port}",
            "inference_addr": f"127.0.0.1:{inference.port}",
        }
        jobs_server = await start(
            "jobs",
            **addresses,
            webhook_secret_keys=secret_key(),
            webhook_allowed_hosts="127.0.0.1",
            **(jobs or {}),
        )
        settings = gateway_settings(
            f"127.0.0.1:{identity.port}",
            redis_url,
            jobs_addr=f"127.0.0.1:{jobs_server.port}",
            **addresses,
            storage_dir=str(storage),
            files_signing_key="e2e-files-signing-key-0123456789",
            input_url_allowed_hosts="127.0.0.1",
            backend_timeout_seconds="20",
            **(gateway or {}),
        )
        edge = await stack.enter_async_context(running_edge(settings))
        servers = {"identity": identity, "billing": billing, "inference": inference, "jobs": jobs_server}
        yield JobsStack(database_url, redis_url, storage, servers, edge)
