"""Verdicts on bound workflows, remembered for a short while.

Validation asks the inference context, which checks a workflow against its backends' live node catalogs.
The same bound workflow arrives again and again (a preset with its usual parameters over a folder of
photos, a client's fixed graph on new uploads: inputs are bound under stable file names), and its verdict
changes only when the catalogs do. So verdicts, good or bad, are kept for `ttl_seconds`, at most
`max_entries` of them, the least recently used leaving first; a failure to validate is never kept.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from jobs.service.ports import Validation, Validator


class CachedValidator:
    """A Validator that answers a repeated workflow from memory."""

    def __init__(
        self,
        inner: Validator,
        ttl_seconds: float,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self.verdicts: OrderedDict[bytes, tuple[float, Validation]] = OrderedDict()

    async def validate(self, workflow_json: str, filenames: Sequence[str]) -> Validation:
        if self.ttl_seconds <= 0:
            return await self.inner.validate(workflow_json, filenames)
        key = hashlib.sha256("\0".join([workflow_json, *filenames]).encode()).digest()
        now = self.clock()
        kept = self.verdicts.get(key)
        if kept is not None and kept[0] > now:
            self.verdicts.move_to_end(key)
            return kept[1]
        verdict = await self.inner.validate(workflow_json, filenames)
        self.verdicts[key] = (now + self.ttl_seconds, verdict)
        self.verdicts.move_to_end(key)
        while len(self.verdicts) > self.max_entries:
            self.verdicts.popitem(last=False)
        return verdict
