"""The API product as separate processes for the jobs benchmarks (not a benchmark itself).

identity, billing, inference, jobs and the gateway each run as `python -m <pkg> serve` on free ports, as the
local stack runs them, on PostgreSQL and Redis from BENCH_DATABASE_URL / BENCH_REDIS_URL (else
TEST_DATABASE_URL / TEST_REDIS_URL, else the embedded servers the tests use), in a fresh database with every
schema migrated. The backend is the local CPU runtime started as its own process (or any ComfyUI URL given),
so a direct client can use the very same runtime as a baseline. Every service logs at `warning`, so no path
pays for per-request info logs, and checks its dependencies every 5 s as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support import databases  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

HIGH_LIMITS = {"RATE_LIMITS": "default:1000000000/1", "RATE_LIMIT_IP": "1000000000/1"}
PLAN = {"plan_id": "bench", "display_name": "Bench", "description": "Unbounded.", "monthly_job_quota": 10**9}
WEBHOOK_KEY = "v1:" + "YmVuY2gtd2ViaG9vay1zZWFsaW5nLWtleS0wMDAwMDA="  # 32 bytes, benchmark only


@contextlib.contextmanager
def data_servers() -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis URLs: from the environment, else the embedded servers of the test suite."""
    from tests.support.infra import postgres_server, redis_server

    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    redis = os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL")
    with contextlib.ExitStack() as stack:
        pg = pg or stack.enter_context(postgres_server())
        redis = redis or stack.enter_context(redis_server())
        yield pg, redis


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new database with every schema migrated, dropped afterwards."""
    template = await databases.migrated_template(server_url)
    name = databases.unique_name("bench")
    try:
        url = await databases.create_database(server_url, name, template=template)
        try:
            yield url
        finally:
            await databases.drop_database(server_url, name)
    finally:
        await databases.drop_database(server_url, template)


async def empty_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.flushdb()  # this benchmark's database index only; the server may be shared
    await client.aclose()


@dataclass
class Stack:
    """The running processes and where they keep things."""

    database_url: str
    redis_url: str
    folder: Path
    runtime_url: str
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def storage(self) -> Path:
        return self.folder / "storage"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.processes['gateway'].address}"

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def api_key(self, email: str = "") -> str:
        """A new user's API key from `python -m identity create-user` (the key is its last line)."""
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": "warning",
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "identity",
                "create-user",
                "--email",
                email or f"bench-{secrets.token_hex(4)}@example.com",
            ],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]


@contextlib.asynccontextmanager
async def running_stack(
    runtime_url: str = "",
    services: tuple[str, ...] = ("identity", "billing", "inference", "jobs", "gateway"),
    jobs_env: dict[str, str] | None = None,
    inference_env: dict[str, str] | None = None,
    gateway_env: dict[str, str] | None = None,
    inference_addr: str = "",
) -> AsyncIterator[Stack]:
    """Starts the services named (the local runtime too unless `runtime_url` is given); stops them after."""
    from inference.adapters.local_runtime import LocalRuntime

    with data_servers() as (pg, redis_url), tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        folder = Path(tmp)
        await empty_redis(redis_url)
        runtime: LocalRuntime | None = None
        async with fresh_database(pg) as database_url:
            if not runtime_url and "inference" in services:
                runtime = LocalRuntime(folder / "runtime")
                runtime_url = await runtime.start()
            stack = Stack(database_url, redis_url, folder, runtime_url)
            (folder / "plans.json").write_text(json.dumps([PLAN]))
            logs = folder / "logs"
            # Production's readiness interval, not the tests' 0.2 s.
            quiet = {"LOG_LEVEL": "warning", "READINESS_INTERVAL_SECONDS": "5"}
            base = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, **quiet}
            made = {
                "identity": ServiceProcess("identity", dict(base), logs),
                "billing": ServiceProcess(
                    "billing",
                    {**base, "PLANS_FILE": str(folder / "plans.json"), "DEFAULT_PLAN": "bench"},
                    logs,
                ),
                "inference": ServiceProcess(
                    "inference",
                    {
                        **quiet,
                        "COMFYUI_URLS": f"local={runtime_url}",
                        "STORAGE_DIR": str(stack.storage),
                        **(inference_env or {}),
                    },
                    logs,
                ),
                "jobs": ServiceProcess("jobs", dict(base), logs),
                "gateway": ServiceProcess("gateway", dict(base), logs, http=True),
            }
            stack.processes = {name: made[name] for name in services}
            addresses = {
                "IDENTITY_ADDR": made["identity"].address,
                "BILLING_ADDR": made["billing"].address,
                "INFERENCE_ADDR": inference_addr or made["inference"].address,
                "JOBS_ADDR": made["jobs"].address,
                "DRIVE_SYNC_ADDR": "127.0.0.1:9",
            }
            made["jobs"].env |= {
                **addresses,
                "WEBHOOK_SECRET_KEYS": WEBHOOK_KEY,
                **(jobs_env or {}),
            }
            made["gateway"].env |= {
                **addresses,
                **HIGH_LIMITS,
                "STORAGE_DIR": str(stack.storage),
                "FILES_SIGNING_KEY": "bench-files-signing-key-0123456789",
                "BACKEND_TIMEOUT_SECONDS": "60",
                "GENERATE_WAIT_SECONDS": "120",
                **(gateway_env or {}),
            }
            try:
                first = [p for n, p in stack.processes.items() if n not in ("jobs", "gateway")]
                await asyncio.gather(*(p.start() for p in first))
                for name in ("jobs", "gateway"):
                    if name in stack.processes:
                        await stack.processes[name].start()
                yield stack
            finally:
                await asyncio.gather(*(p.stop() for p in reversed(stack.processes.values())))
                if runtime is not None:
                    await runtime.stop()


def cpu_times(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each service, the local runtime, every PostgreSQL server process and this
    process (the load generator)."""
    found = {}
    for name, process in stack.processes.items():
        times = psutil.Process(process.pid).cpu_times()
        found[name] = times.user + times.system + times.children_user + times.children_system
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "inference.runtime" in child.cmdline():
                found["runtime"] = found.get("runtime", 0.0) + sum(child.cpu_times()[:2])
    found["postgres"] = 0.0
    for server in psutil.process_iter(["name", "cpu_times"]):
        if server.info["name"] == "postgres" and server.info["cpu_times"] is not None:
            found["postgres"] += server.info["cpu_times"].user + server.info["cpu_times"].system
    mine = psutil.Process().cpu_times()
    found["client"] = mine.user + mine.system
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")
