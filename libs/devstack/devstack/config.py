"""What the local stack runs and where: the six services, their ports, the state folder, the data servers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Service:
    """One service process: `python -m <package> serve`, plus `migrate` first when it owns a schema."""

    name: str
    grpc_port: int | None = None
    metrics_port: int | None = None
    http_port: int | None = None
    migrates: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port or self.http_port}"


# Start order; all are started at once, the order only matters for logs and for which one is named first.
DEFAULT_SERVICES = (
    Service("identity", grpc_port=50051, metrics_port=9101, migrates=True),
    Service("billing", grpc_port=50052, metrics_port=9102, migrates=True),
    Service("inference", grpc_port=50054, metrics_port=9104),
    Service("jobs", grpc_port=50053, metrics_port=9103, migrates=True),
    Service("drive_sync", grpc_port=50055, metrics_port=9105, migrates=True),
    Service("gateway", http_port=8080),
)
PEER_ADDRESS_VARS = {
    "identity": "IDENTITY_ADDR",
    "billing": "BILLING_ADDR",
    "jobs": "JOBS_ADDR",
    "inference": "INFERENCE_ADDR",
    "drive_sync": "DRIVE_SYNC_ADDR",
}


def _shift(port: int | None, offset: int) -> int | None:
    return None if port is None else port + offset


@dataclass(frozen=True)
class StackConfig:
    """Read once from the environment by `from_env`; every port moves by STACK_PORT_OFFSET."""

    state_dir: Path
    services: tuple[Service, ...]
    postgres_port: int
    redis_port: int
    database_url: str | None
    redis_url: str | None
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackConfig:
        offset = int(env.get("STACK_PORT_OFFSET", "0"))
        services = tuple(
            Service(
                s.name,
                _shift(s.grpc_port, offset),
                _shift(s.metrics_port, offset),
                _shift(s.http_port, offset),
                s.migrates,
            )
            for s in DEFAULT_SERVICES
        )
        return cls(
            state_dir=Path(env.get("STACK_STATE_DIR") or REPO_ROOT / ".state").resolve(),
            services=services,
            postgres_port=int(env.get("STACK_PG_PORT") or 55432 + offset),
            redis_port=int(env.get("STACK_REDIS_PORT") or 56379 + offset),
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            ready_timeout_s=float(env.get("STACK_READY_TIMEOUT", "60")),
        )

    @property
    def gateway(self) -> Service:
        return next(s for s in self.services if s.http_port is not None)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway.address}"

    def service_env(self, service: Service, database_url: str, redis_url: str) -> dict[str, str]:
        """The variables one service gets on top of the runner's own environment."""
        env = {
            **local_secrets(self.state_dir),
            "STORAGE_DIR": str(self.state_dir / "storage"),
            "RUNTIME_DATA_DIR": str(self.state_dir / "runtime"),
            "COOKIE_SECURE": "false",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SERVICE_NAME": service.name,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            "GRPC_HOST": "127.0.0.1",
        }
        env |= {var: s.address for s in self.services if (var := PEER_ADDRESS_VARS.get(s.name))}
        if service.grpc_port is not None:
            env["GRPC_PORT"] = str(service.grpc_port)
        if service.metrics_port is not None:
            env["METRICS_PORT"] = str(service.metrics_port)
        if service.http_port is not None:
            env |= {"HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(service.http_port)}
        return env


def local_secrets(state_dir: Path) -> dict[str, str]:
    """Encryption keys for a local stack, made once and kept in the state folder (mode 600).

    They let the token vault, webhook secrets and signed download links work out of the box; a real
    deployment sets its own.
    """
    path = state_dir / "secrets.json"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        keys = {
            name: f"v1:{base64.b64encode(os.urandom(32)).decode()}"
            for name in ("VAULT_KEYS", "WEBHOOK_SECRET_KEYS")
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(keys))
    keys = dict(json.loads(path.read_text()))
    if "FILES_SIGNING_KEY" not in keys:  # a state folder made before the gateway signed download links
        keys["FILES_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode()
        path.write_text(json.dumps(keys))
    return keys


def redact(url: str) -> str:
    """The URL with its password replaced, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
