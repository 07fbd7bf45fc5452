"""Verdicts on workflows are reused for a while, per exact bound workflow, and failures are never kept."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from jobs.service.ports import Validation
from jobs.service.validation import CachedValidator
from servicekit import errors

VALID = Validation(violations=(), output_node_ids=("9",))
INVALID = Validation(violations=(("1.inputs.image", "unknown node"),), output_node_ids=())


class CountingValidator:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.answer: Validation | errors.DomainError = VALID

    async def validate(self, workflow_json: str, filenames: Sequence[str]) -> Validation:
        self.calls.append((workflow_json, tuple(filenames)))
        if isinstance(self.answer, errors.DomainError):
            raise self.answer
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_same_workflow_is_validated_once_until_its_verdict_expires() -> None:
    inner, clock = CountingValidator(), Clock()
    cached = CachedValidator(inner, ttl_seconds=30, clock=clock)
    assert await cached.validate('{"1": {}}', ["a.png"]) == VALID
    inner.answer = INVALID
    clock.now += 29
    assert await cached.validate('{"1": {}}', ["a.png"]) == VALID
    clock.now += 2
    assert await cached.validate('{"1": {}}', ["a.png"]) == INVALID
    assert len(inner.calls) == 2


async def test_another_workflow_or_other_file_names_are_validated_afresh() -> None:
    inner = CountingValidator()
    cached = CachedValidator(inner, ttl_seconds=30)
    await cached.validate('{"1": {}}', ["a.png"])
    await cached.validate('{"1": {}}', ["b.png"])
    await cached.validate('{"2": {}}', ["a.png"])
    assert len(inner.calls) == 3


async def test_a_failure_to_validate_is_not_remembered() -> None:
    inner = CountingValidator()
    cached = CachedValidator(inner, ttl_seconds=30)
    inner.answer = errors.Unavailable("no backend", reason="NO_BACKEND")
    with pytest.raises(errors.Unavailable):
        await cached.validate("{}", [])
    inner.answer = VALID
    assert await cached.validate("{}", []) == VALID
    assert len(inner.calls) == 2


async def test_the_least_recently_used_verdict_leaves_first_and_zero_ttl_always_asks() -> None:
    inner = CountingValidator()
    cached = CachedValidator(inner, ttl_seconds=30, max_entries=2)
    for text in ("a", "b", "a", "c", "a", "b"):
        await cached.validate(text, [])
    assert [w for w, _ in inner.calls] == ["a", "b", "c", "b"]

    uncached = CachedValidator(inner, ttl_seconds=0)
    await uncached.validate("a", [])
    await uncached.validate("a", [])
    assert len(inner.calls) == 6
