from __future__ import annotations

import grpc

from servicekit import errors, status


def _as_rpc_error(error: errors.DomainError) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        status.grpc_code(error),
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata(error)),
        error.message,
    )


def test_a_domain_error_survives_the_round_trip_through_a_rich_status() -> None:
    sent = errors.InvalidArgument(
        "workflow node 3 is broken",
        reason="WORKFLOW_INVALID",
        metadata={"node": "3"},
        violations=(errors.FieldViolation('workflow_json["3"].inputs.seed', "must be an integer"),),
    )
    received = status.from_rpc_error(_as_rpc_error(sent))
    assert isinstance(received, errors.InvalidArgument)
    assert (received.reason, received.metadata, received.violations) == (
        sent.reason,
        sent.metadata,
        sent.violations,
    )


def test_retry_info_carries_the_delay() -> None:
    sent = errors.ResourceExhausted("quota used up", reason="QUOTA_EXCEEDED", retry_after=90.5)
    received = status.from_rpc_error(_as_rpc_error(sent))
    assert isinstance(received, errors.ResourceExhausted)
    assert received.retry_after == 90.5


def test_a_transport_failure_without_details_becomes_unavailable() -> None:
    failure = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connection refused"
    )
    received = status.from_rpc_error(failure)
    assert isinstance(received, errors.Unavailable)
    assert received.reason == "UNAVAILABLE"


def test_codes_without_a_domain_kind_become_internal() -> None:
    failure = grpc.aio.AioRpcError(grpc.StatusCode.DATA_LOSS, grpc.aio.Metadata(), grpc.aio.Metadata(), "x")
    received = status.from_rpc_error(failure)
    assert isinstance(received, errors.Internal)
    assert received.reason == "UPSTREAM_DATA_LOSS"
