"""Job ids: lower-case UUIDs of version 7, so ids sort by creation time."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> str:
    """A new UUIDv7: 48 bits of Unix milliseconds, then 74 random bits (RFC 9562)."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def is_job_id(text: str) -> bool:
    """Whether `text` is a canonical lower-case UUID."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
