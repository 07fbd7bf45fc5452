"""Choosing a backend: health, drain, per-backend slots, load and checkpoint affinity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inference.domain.backends import BackendState, Health, Kind, backend_id_from_name, choose
from inference.domain.events import Failed, FailureReason, Timing, trim_traceback
from inference.domain.prompts import prompt_id_for
from servicekit import errors

NOW = datetime.now(UTC)


def backend(backend_id: str, *, in_flight: int = 0, checkpoint: str = "", **kwargs: object) -> BackendState:
    state = BackendState(backend_id, f"http://{backend_id}", Kind.COMFYUI, NOW, health=Health.HEALTHY)
    for key, value in kwargs.items():
        setattr(state, key, value)
    state.in_flight = {f"p{i}": f"e{i}" for i in range(in_flight)}
    state.last_checkpoint = checkpoint
    return state


def test_the_least_loaded_healthy_backend_is_chosen() -> None:
    chosen = choose([backend("a", in_flight=1), backend("b"), backend("c", in_flight=1)], [], limit=2)
    assert chosen is not None
    assert chosen.backend_id == "b"


def test_a_backend_whose_last_workflow_used_the_checkpoint_wins_at_equal_load() -> None:
    states = [backend("a", checkpoint="sdxl.safetensors"), backend("b", checkpoint="sd15.safetensors")]
    chosen = choose(states, ["sd15.safetensors"], limit=2)
    assert chosen is not None
    assert chosen.backend_id == "b"


def test_affinity_does_not_make_work_wait_behind_a_busier_backend_forever() -> None:
    states = [backend("a", in_flight=1, checkpoint="sd15.safetensors"), backend("b", checkpoint="other")]
    chosen = choose(states, ["sd15.safetensors"], limit=2)
    assert chosen is not None
    assert chosen.backend_id == "b"


def test_full_draining_and_unhealthy_backends_are_never_chosen() -> None:
    states = [
        backend("full", in_flight=2),
        backend("drained", draining=True),
        backend("down", health=Health.UNREACHABLE),
        backend("degraded", health=Health.DEGRADED),
    ]
    assert choose(states, [], limit=2) is None


def test_prompt_ids_are_canonical_lower_case_uuids_stable_per_execution() -> None:
    first = prompt_id_for("jobs/0190/attempts/1")
    assert first == prompt_id_for("jobs/0190/attempts/1") == first.lower()
    assert len(first) == 36
    assert first.count("-") == 4
    assert first != prompt_id_for("jobs/0190/attempts/2")


@pytest.mark.parametrize("name", ["gpu-0", "backends/", "backends/a/b", "backends/-x"])
def test_malformed_backend_names_are_invalid_argument(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        backend_id_from_name(name)


def test_tracebacks_are_trimmed_to_the_last_twenty_frames() -> None:
    text = trim_traceback([f'File "x.py", line {i}, in f' for i in range(50)])
    assert text.count("\n") == 19
    assert text.endswith("line 49, in f")


def test_only_transient_failures_are_retryable() -> None:
    timing = Timing(None, None, NOW)
    assert Failed(FailureReason.BACKEND_LOST, "lost", timing).retryable
    assert not Failed(FailureReason.NODE_EXCEPTION, "boom", timing).retryable
