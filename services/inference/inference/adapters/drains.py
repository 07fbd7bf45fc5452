"""Drain flags: in memory for one replica, or in Redis so every replica sees the same flags."""

from __future__ import annotations

from typing import Any

from servicekit import errors

KEY = "inference:drains"


class MemoryDrains:
    """Drain flags of a single replica."""

    def __init__(self) -> None:
        self._flags: dict[str, str] = {}

    async def get_all(self) -> dict[str, str]:
        """Every drained backend id with its reason."""
        return dict(self._flags)

    async def set(self, backend_id: str, reason: str) -> None:
        """Marks a backend as draining."""
        self._flags[backend_id] = reason

    async def clear(self, backend_id: str) -> None:
        """Clears a backend's draining flag."""
        self._flags.pop(backend_id, None)


class RedisDrains:
    """Drain flags in one Redis hash shared by every replica."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def get_all(self) -> dict[str, str]:
        """Every drained backend id with its reason."""
        try:
            raw = await self.redis.hgetall(KEY)
        except Exception as exc:  # redis raises its own hierarchy and OS errors alike
            raise errors.Unavailable(
                f"redis: {type(exc).__name__}", reason="DRAIN_STORE_UNAVAILABLE"
            ) from None
        return {_text(k): _text(v) for k, v in raw.items()}

    async def set(self, backend_id: str, reason: str) -> None:
        """Marks a backend as draining."""
        try:
            await self.redis.hset(KEY, backend_id, reason)
        except Exception as exc:
            raise errors.Unavailable(
                f"redis: {type(exc).__name__}", reason="DRAIN_STORE_UNAVAILABLE"
            ) from None

    async def clear(self, backend_id: str) -> None:
        """Clears a backend's draining flag."""
        try:
            await self.redis.hdel(KEY, backend_id)
        except Exception as exc:
            raise errors.Unavailable(
                f"redis: {type(exc).__name__}", reason="DRAIN_STORE_UNAVAILABLE"
            ) from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
