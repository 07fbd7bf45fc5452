"""A small in-process cache of authentication results, with tags for targeted invalidation.

Entries are found by a digest of the credential (never the credential itself) and carry tags such as
`api_key:apiKeys/k1` or `user:users/u1`, so a revocation naming a key, a session or a user drops exactly the
entries it concerns. Failures are cached too, briefly, so a client hammering a wrong key reaches identity at
most once per negative TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float
    tags: frozenset[str]


class TtlCache(Generic[V]):
    """A bounded LRU map whose entries expire and can be dropped by tag."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._max_entries = max(1, max_entries)
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        """The live value under `key`, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def time_left(self, key: str) -> float:
        """Seconds until the entry under `key` expires; 0 when there is none."""
        entry = self._entries.get(key)
        return 0.0 if entry is None else max(0.0, entry.expires_at - self._clock())

    def put(self, key: str, value: V, ttl: float, tags: Iterable[str] = ()) -> None:
        """Stores `value` for `ttl` seconds; a ttl of 0 or less stores nothing."""
        self._drop(key)
        if ttl <= 0:
            return
        entry = _Entry(value, self._clock() + ttl, frozenset(tags))
        self._entries[key] = entry
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self._max_entries:
            self._drop(next(iter(self._entries)))

    def invalidate(self, tag: str) -> int:
        """Drops every entry carrying `tag`; returns how many went."""
        keys = self._by_tag.pop(tag, set())
        for key in keys:
            self._drop(key)
        return len(keys)

    def clear(self) -> None:
        """Drops everything, as after missed revocations."""
        self._entries.clear()
        self._by_tag.clear()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]
