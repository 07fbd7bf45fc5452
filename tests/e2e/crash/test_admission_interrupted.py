"""Admission broken between its steps: the row is written (ADMITTING), billing reserves, the row turns QUEUED.

Two ways in: billing is down (the reservation fails, the row stays ADMITTING), or billing reserved but the
jobs service died before it heard so. A TCP relay between jobs and billing holds billing's answer back to
open that second window exactly: billing has committed the reservation, jobs never learns of it, and is then
killed. Either way a client retrying with its idempotency key gets the same job, which runs and is charged
once; a client that never retries gets nothing, and the reservation is released, never leaked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from comfyapi.jobs.v1 import job_pb2
from tests.e2e.crash.conftest import Receiver, Stack, eventually, start_stack, tiny_workflow
from tests.e2e.crash.test_jobs_killed import assert_finished_once

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
async def relayed(
    tmp_path: Path, database_url: str, clean_redis: str, receiver: Receiver
) -> AsyncIterator[Stack]:
    """The stack with jobs reaching billing through a relay that can hold billing's answers.

    Half-done admissions are abandoned after 3 s, so the reaper's work can be watched.
    """
    async for running in start_stack(
        tmp_path, database_url, clean_redis, receiver, billing_proxy=True, admission_abandon_seconds="3"
    ):
        yield running


@pytest.fixture
async def relayed_patient(
    tmp_path: Path, database_url: str, clean_redis: str, receiver: Receiver
) -> AsyncIterator[Stack]:
    """As `relayed`, but the reaper waits ten minutes, longer than any restart takes on a busy machine."""
    async for running in start_stack(
        tmp_path, database_url, clean_redis, receiver, billing_proxy=True, admission_abandon_seconds="600"
    ):
        yield running


async def admitting_rows(stack: Stack) -> list[str]:
    rows = await stack.query("SELECT id::text FROM jobs.jobs WHERE state = 'admitting'")
    return [r["id"] for r in rows]


async def hold_reservation_and_kill_jobs(stack: Stack, request_id: str) -> str:
    """Starts an admission, lets billing reserve, kills jobs before it hears back; returns the job name."""
    proxy = stack.billing_proxy
    assert proxy is not None
    proxy.hold_replies()
    pending = asyncio.create_task(stack.create(tiny_workflow(), request_id=request_id))
    [job_id] = await eventually(lambda: admitting_rows(stack), lambda rows: len(rows) == 1, "admission")
    name = f"jobs/{job_id}"
    await eventually(lambda: stack.reservations(name), lambda s: s == ["reserved"], "billing to reserve")
    await stack.jobs.kill()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pending
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    proxy.release()
    return name


async def test_a_reservation_whose_answer_was_lost_is_resumed_by_the_clients_retry(
    relayed_patient: Stack,
) -> None:
    relayed = relayed_patient
    name = await hold_reservation_and_kill_jobs(relayed, "retry-me")
    assert await admitting_rows(relayed) == [name.removeprefix("jobs/")]
    await relayed.jobs.start()

    again = await relayed.create(tiny_workflow(), request_id="retry-me")
    assert again.name == name
    done = await relayed.finished(name)
    await assert_finished_once(relayed, done)
    assert [j.name for j in await relayed.list_jobs()] == [name]
    assert await relayed.usage() == (1, 0)


async def test_a_reservation_whose_client_gave_up_is_released_and_the_row_removed(relayed: Stack) -> None:
    name = await hold_reservation_and_kill_jobs(relayed, "gave-up")
    # Holding one unit of quota while half admitted (jobs is down, so nothing can release it yet), and
    # invisible to its owner once jobs is back.
    assert await relayed.usage() == (0, 1)
    await relayed.jobs.start()
    assert await relayed.list_jobs() == []

    await eventually(lambda: relayed.reservations(name), lambda s: s == ["released"], "the reaper to release")
    await eventually(lambda: admitting_rows(relayed), lambda rows: rows == [], "the row to be removed")
    assert await relayed.usage() == (0, 0)
    assert await relayed.list_jobs() == []
    assert relayed.receiver.received == []
    # The key is free again: the same request now makes a new job, which runs and is charged once.
    fresh = await relayed.create(tiny_workflow(), request_id="gave-up")
    assert fresh.name != name
    await assert_finished_once(relayed, await relayed.finished(fresh.name))
    assert await relayed.usage() == (1, 0)


async def test_billing_down_at_admission_refuses_the_job_and_a_retry_admits_it_once(stack: Stack) -> None:
    await stack.billing.kill()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.create(tiny_workflow(), request_id="billing-down")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await stack.list_jobs() == []
    [left] = await admitting_rows(stack)  # kept for the retry (or the reaper), never dispatched

    await stack.billing.start()
    # The client retries with its key, as the UNAVAILABLE told it to, until jobs has reconnected to billing.
    job = await eventually(
        lambda: stack.create(tiny_workflow(), request_id="billing-down"), lambda _: True, "the retry"
    )
    assert job.name == f"jobs/{left}"
    assert job.state != job_pb2.JOB_STATE_UNSPECIFIED
    await assert_finished_once(stack, await stack.finished(job.name))
    assert await stack.usage() == (1, 0)
