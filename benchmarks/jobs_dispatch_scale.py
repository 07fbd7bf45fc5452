"""Benchmark: dispatching a deep queue, 20,000 jobs of 500 owners onto 16 backends.

    .venv/bin/python benchmarks/jobs_dispatch_scale.py [--jobs 20000] [--owners 500] [--backends 16]
        [--exec-ms 50] [--duration 300] [--interval 10]

The jobs service runs as its own process (`python -m jobs serve`, DISPATCH_CONCURRENCY=32, two running jobs
per owner) with the real billing service, on PostgreSQL and Redis as in jobs_stack.py. Inference is a
scripted stand-in on a real gRPC port, in this process (not the real service: 16 GPUs are not available
here): it keeps 16 "backends" busy, one execution each, every execution holding its backend for --exec-ms
and then succeeding with one output. So it can take up to 16 / exec-ms jobs per second, more than the
dispatcher is expected to deliver: what is measured is the jobs service.

The queue is filled before the jobs service starts, straight into its table (rows exactly as admission
writes them, with billing reservations to match), since admission is measured by jobs_admission.py. Every
--interval seconds it prints the jobs finished in that interval (the dispatch rate), the queue depth and the
jobs process's resident memory; the claim is "rate and memory stay flat" as the queue drains. The baseline
in the same run is the stand-in's capacity (16 / exec-ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import psutil
from jobs_stack import Stack, running_stack
from sqlalchemy.engine import make_url

from comfyapi.inference.v1 import execution_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from comfyapi.inference.v1 import inference_service_pb2_grpc as pb_grpc
from jobs.adapters import codec
from jobs.domain.jobs import Job, JobState, Priority, Source, next_sequence
from servicekit import logging as service_logging
from servicekit.server import Registration, ServiceApp
from tests.support.servers import serving

WORKFLOW = json.dumps(
    {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "scale"}},
    }
)


def event(**kind: Any) -> pb.ExecuteResponse:
    return pb.ExecuteResponse(event=execution_pb2.ExecuteEvent(**kind))


class Backends(pb_grpc.InferenceServiceServicer):
    """Scripted inference with `count` backends, each running one execution for `seconds`."""

    def __init__(self, count: int, seconds: float) -> None:
        self.free = asyncio.Queue[int]()
        for index in range(count):
            self.free.put_nowait(index)
        self.seconds = seconds
        self.executions = 0

    async def Execute(self, request: pb.ExecuteRequest, context: Any) -> AsyncIterator[pb.ExecuteResponse]:
        backend = await self.free.get()
        try:
            self.executions += 1
            yield event(
                accepted=execution_pb2.AcceptedEvent(backend=f"backends/fake-{backend}", prompt_id="p")
            )
            yield event(
                node_started=execution_pb2.NodeStartedEvent(node_id="2", node_type="SaveImage", fraction=0.5)
            )
            await asyncio.sleep(self.seconds)
            artifact = execution_pb2.Artifact(
                storage_key=f"{request.output_prefix}/2/out.png",
                content_type="image/png",
                size_bytes=70,
                sha256="0" * 64,
                width=8,
                height=8,
                node_id="2",
                filename="out.png",
            )
            yield event(output=execution_pb2.OutputEvent(node_id="2", artifacts=[artifact]))
            yield event(succeeded=execution_pb2.SucceededEvent(artifacts=[artifact]))
        finally:
            self.free.put_nowait(backend)


def stand_in(backends: Backends) -> ServiceApp:
    return ServiceApp(
        name="inference-stand-in",
        registrations=[
            Registration(
                pb.DESCRIPTOR.services_by_name["InferenceService"],
                backends,
                pb_grpc.add_InferenceServiceServicer_to_server,
            )
        ],
    )


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fill_queue(database_url: str, jobs: int, owners: int) -> None:
    """`jobs` QUEUED jobs round robin over `owners`, each with its billing reservation, as admission leaves
    them."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    period = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    job_rows, reservation_rows = [], []
    for index in range(jobs):
        created = now + timedelta(microseconds=index * 10)
        job = Job(
            id=str(uuid.uuid4()),
            owner=f"users/owner-{index % owners:04d}",
            state=JobState.QUEUED,
            priority=Priority.NORMAL,
            source=Source(workflow_sha256="0" * 64, node_count=2, node_types=("EmptyImage", "SaveImage")),
            inputs=(),
            labels={},
            webhook=None,
            deadline=None,
            request_id="",
            create_time=created,
            update_time=created,
            sequence=next_sequence(0, created),
        )
        row = codec.to_row(job)
        job_rows.append(
            (
                row["id"], row["owner"], row["state"], row["priority"], json.dumps(row["source"]), "[]", "{}",
                row["request_id"], "", WORKFLOW, "[]", created, created, 0, "[]", False, row["sequence"],
                created,
            )
        )  # fmt: skip
        reservation_rows.append((job.name, job.owner, 1, "reserved", period, job.name, created, created))
    connection = await asyncpg.connect(plain(database_url))
    try:
        await connection.copy_records_to_table(
            "jobs",
            schema_name="jobs",
            records=job_rows,
            columns=[
                "id", "owner", "state", "priority", "source", "inputs", "labels", "request_id",
                "request_hash", "workflow_json", "files", "create_time", "update_time", "attempt_count",
                "outputs", "cancel_requested", "sequence", "next_attempt_time",
            ],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "reservations",
            schema_name="billing",
            records=reservation_rows,
            columns=[
                "job",
                "owner",
                "units",
                "state",
                "period_start",
                "request_id",
                "create_time",
                "update_time",
            ],
        )
        # The owners' running totals, as reserving each of those jobs would have left them.
        await connection.execute(
            "INSERT INTO billing.usage_totals (owner, period_start, committed, reserved) "
            "SELECT owner, period_start, 0, sum(units) FROM billing.reservations GROUP BY owner, period_start"
        )
        await connection.execute("ANALYZE jobs.jobs; ANALYZE billing.reservations")
    finally:
        await connection.close()


async def counts(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(plain(database_url))
    try:
        rows = await connection.fetch("SELECT state, count(*) AS n FROM jobs.jobs GROUP BY state")
    finally:
        await connection.close()
    return {r["state"]: int(r["n"]) for r in rows}


async def main(args: argparse.Namespace) -> None:
    service_logging.configure("bench", "warning", "console")
    backends = Backends(args.backends, args.exec_ms / 1000)
    async with (
        serving(stand_in(backends)) as inference,
        running_stack(
            services=("billing", "jobs"),
            inference_addr=f"127.0.0.1:{inference.port}",
            jobs_env={"DISPATCH_CONCURRENCY": "32", "MAX_RUNNING_PER_OWNER": "2"},
        ) as stack,
    ):
        await run(stack, backends, args)


async def run(stack: Stack, backends: Backends, args: argparse.Namespace) -> None:
    jobs = stack.processes["jobs"]
    await jobs.stop()  # fill the queue first; the service starts on a full queue
    began = time.perf_counter()
    await fill_queue(stack.database_url, args.jobs, args.owners)
    print(f"queued {args.jobs} jobs of {args.owners} owners in {time.perf_counter() - began:.1f} s")
    await jobs.start()
    process = psutil.Process(jobs.pid)
    capacity = args.backends / (args.exec_ms / 1000)
    print(f"stand-in capacity: {capacity:.0f} jobs/s ({args.backends} backends x {args.exec_ms:.0f} ms)")
    print(f"{'t s':>6}{'finished':>10}{'rate/s':>9}{'queued':>9}{'running':>9}{'RSS MB':>9}{'CPU %':>7}")
    started = time.perf_counter()
    process.cpu_percent()
    previous, rates = 0, []
    while True:
        await asyncio.sleep(args.interval)
        found = await counts(stack.database_url)
        finished = found.get("succeeded", 0) + found.get("failed", 0)
        rate = (finished - previous) / args.interval
        rates.append(rate)
        previous = finished
        elapsed = time.perf_counter() - started
        queued, running = found.get("queued", 0), found.get("running", 0)
        print(
            f"{elapsed:>6.0f}{finished:>10}{rate:>9.1f}{queued:>9}{running:>9}"
            f"{process.memory_info().rss / 2**20:>9.1f}{process.cpu_percent():>7.0f}"
        )
        if (not found.get("queued") and not found.get("running")) or elapsed > args.duration:
            break
    steady = rates[1:-1] or rates
    print(
        f"dispatch rate: mean {sum(steady) / len(steady):.1f} jobs/s (first interval excluded), "
        f"min {min(steady):.1f}, max {max(steady):.1f}; {sum(steady) / len(steady) / capacity:.3f} of the "
        f"stand-in's capacity; executions started {backends.executions}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--owners", type=int, default=500)
    parser.add_argument("--backends", type=int, default=16)
    parser.add_argument("--exec-ms", type=float, default=50)
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--interval", type=float, default=10)
    asyncio.run(main(parser.parse_args()))
