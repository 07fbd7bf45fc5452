"""The backend pool: health probes, drain flags, and the choice of a backend for each execution.

Each backend holds at most `max_in_flight` prompts of ours (one running, one queued by default), so the GPU
never idles between jobs while the rest of the work waits here, free to go to whichever backend frees first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inference.domain.backends import BackendState, Device, Health, choose
from inference.domain.catalog import Catalog
from inference.service.ports import Backend, DrainFlags
from servicekit import errors
from servicekit.logging import get_logger

log = get_logger("inference.pool")


@dataclass
class Member:
    """One backend of the pool: its adapter and what the pool knows about it."""

    client: Backend
    state: BackendState


def _now() -> datetime:
    return datetime.now(UTC)


def _devices(stats: dict[str, Any]) -> tuple[Device, ...]:
    found = []
    for raw in stats.get("devices") or ():
        if isinstance(raw, dict):
            index = raw.get("index")
            found.append(
                Device(
                    name=str(raw.get("name") or ""),
                    type=str(raw.get("type") or ""),
                    index=index if isinstance(index, int) else -1,
                    vram_total=int(raw.get("vram_total") or 0),
                    vram_free=int(raw.get("vram_free") or 0),
                )
            )
    return tuple(found)


class Pool:
    """Every configured backend, probed in the background."""

    def __init__(
        self,
        members: Sequence[Member],
        drains: DrainFlags,
        *,
        max_in_flight: int = 2,
        probe_interval: float = 2.0,
    ) -> None:
        self.members = {m.state.backend_id: m for m in members}
        self.drains = drains
        self.max_in_flight = max_in_flight
        self.probe_interval = probe_interval
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts every backend's connection and the probe loop (the first probe runs at once)."""
        for member in self.members.values():
            await member.client.start()
        await self.probe_all()
        self._task = asyncio.create_task(self._probe_loop(), name="pool-probes")

    async def close(self) -> None:
        """Stops probing and closes every backend connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for member in self.members.values():
            await member.client.close()

    def get(self, backend_id: str) -> Member:
        """The member called `backend_id`; NOT_FOUND reason BACKEND_NOT_FOUND otherwise."""
        member = self.members.get(backend_id)
        if member is None:
            raise errors.NotFound(
                f"no backend backends/{backend_id} in the pool",
                reason="BACKEND_NOT_FOUND",
                metadata={"backend": f"backends/{backend_id}"},
            )
        return member

    def sorted_members(self) -> list[Member]:
        """Every member, ordered by name."""
        return [self.members[k] for k in sorted(self.members)]

    # -- health --------------------------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.probe_all()
            except Exception:  # the loop must survive anything one probe does
                log.exception("pool.probe_failed")

    async def probe_all(self) -> None:
        """Probes every backend once and refreshes the shared drain flags."""
        try:
            flags = await self.drains.get_all()
        except errors.DomainError:
            known = self.members.values()
            flags = {m.state.backend_id: m.state.drain_reason for m in known if m.state.draining}
        await asyncio.gather(*(self._probe(m, flags) for m in self.members.values()))
        await self.notify()

    async def _probe(self, member: Member, flags: dict[str, str]) -> None:
        state, client = member.state, member.client
        state.update_time = _now()
        state.draining = state.backend_id in flags
        state.drain_reason = flags.get(state.backend_id, "")
        try:
            stats = await client.probe()
            if client.cached_catalog is None or state.node_type_count == 0:
                state.checkpoints = tuple(await client.checkpoints())
            catalog = await client.catalog()
        except errors.Unavailable as exc:
            self._mark(state, Health.UNREACHABLE, exc.message)
            return
        system = stats.get("system") or {}
        state.comfyui_version = str(system.get("comfyui_version") or "")
        state.pytorch_version = str(system.get("pytorch_version") or "")
        state.ram_total = int(system.get("ram_total") or 0)
        state.ram_free = int(system.get("ram_free") or 0)
        state.devices = _devices(stats)
        state.node_type_count = len(catalog)
        state.last_seen_time = state.update_time
        self._observe_queue(member)
        if client.connected:
            self._mark(state, Health.HEALTHY, "")
        else:
            self._mark(state, Health.DEGRADED, "HTTP answers but the WebSocket is not connected")

    def _mark(self, state: BackendState, health: Health, message: str) -> None:
        if state.health is not health:
            log.info("backend.health_changed", backend=state.name, health=health.value, message=message[:200])
        state.health, state.health_message = health, message

    def _observe_queue(self, member: Member) -> None:
        client, state = member.client, member.state
        state.running_prompt_id = client.running_prompt or ""
        state.queue_depth = max(0, client.queue_remaining - (1 if client.running_prompt else 0))
        state.running_execution_id = state.in_flight.get(state.running_prompt_id, "")

    def view(self, backend_id: str) -> BackendState:
        """The latest state of one backend, with its live queue figures."""
        member = self.get(backend_id)
        self._observe_queue(member)
        return member.state

    # -- scheduling ----------------------------------------------------------------------------------------

    async def notify(self) -> None:
        """Wakes executions waiting for a slot (a slot freed, health or drain changed)."""
        async with self._changed:
            self._changed.notify_all()

    def catalogs(self, backend_id: str = "") -> list[tuple[str, Catalog]]:
        """The catalogs to validate against: one backend's, or every schedulable backend's."""
        if backend_id:
            member = self.get(backend_id)
            catalog = member.client.cached_catalog
            return [(member.state.name, catalog)] if catalog is not None else []
        return [
            (m.state.name, m.client.cached_catalog)
            for m in self.sorted_members()
            if m.state.schedulable and m.client.cached_catalog is not None
        ]

    async def acquire(
        self, prompt_id: str, execution_id: str, checkpoints: Sequence[str], pinned: str
    ) -> Member:
        """Waits for a backend with a free slot and takes it for `prompt_id`."""
        async with self._changed:
            while True:
                candidates = [self.get(pinned)] if pinned else list(self.members.values())
                if pinned and candidates[0].state.draining:
                    raise errors.FailedPrecondition(
                        f"backend backends/{pinned} is draining", reason="BACKEND_DRAINING"
                    )
                for member in candidates:
                    self._observe_queue(member)
                if not any(m.state.schedulable for m in candidates):
                    raise errors.Unavailable(
                        "no healthy backend is available", reason="BACKEND_UNAVAILABLE", retry_after=5.0
                    )
                chosen = choose([m.state for m in candidates], checkpoints, self.max_in_flight)
                if chosen is not None:
                    chosen.in_flight[prompt_id] = execution_id
                    if checkpoints:
                        chosen.last_checkpoint = checkpoints[0]
                    return self.members[chosen.backend_id]
                await self._changed.wait()

    async def release(self, member: Member, prompt_id: str) -> None:
        """Frees the slot `prompt_id` held."""
        if member.state.in_flight.pop(prompt_id, None) is not None:
            await self.notify()
