"""The server kit over real ports: context across hops, error mapping, metrics and graceful shutdown.

The services here are generic handlers on raw bytes, so these tests exercise the kit alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from servicekit import context, errors, logging, metrics, status
from servicekit.channels import open_channel
from servicekit.server import GrpcServer, Registration, ServiceApp
from tests.support.infra import free_port
from tests.support.servers import serving

Unary = Callable[[bytes, Any], Awaitable[bytes]]


def app(name: str, unary: dict[str, Unary], stream: dict[str, Any] | None = None) -> ServiceApp:
    handlers: dict[str, grpc.RpcMethodHandler] = {
        method: grpc.unary_unary_rpc_method_handler(fn) for method, fn in unary.items()
    }
    handlers.update(
        {method: grpc.unary_stream_rpc_method_handler(fn) for method, fn in (stream or {}).items()}
    )
    generic = grpc.method_handlers_generic_handler(f"test.{name}", handlers)
    descriptor: Any = SimpleNamespace(full_name=f"test.{name}", name=name)
    return ServiceApp(
        name=name,
        registrations=[
            Registration(
                descriptor, generic, lambda handler, server: server.add_generic_rpc_handlers((handler,))
            )
        ],
    )


def call(channel: grpc.aio.Channel, service: str, method: str) -> Any:
    return channel.unary_unary(f"/test.{service}/{method}")


async def test_request_id_and_principal_cross_two_hops_and_reach_every_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.configure("test")
    seen: dict[str, Any] = {}

    async def inner(request: bytes, ctx: Any) -> bytes:
        seen["request_id"], seen["principal"] = context.request_id(), context.principal()
        logging.get_logger().info("inner.handled")
        return b"inner"

    async with serving(app("Inner", {"Handle": inner})) as inner_server:
        inner_channel = open_channel(f"127.0.0.1:{inner_server.port}")

        async def outer(request: bytes, ctx: Any) -> bytes:
            return await call(inner_channel, "Inner", "Handle")(request)

        async with (
            serving(app("Outer", {"Handle": outer})) as outer_server,
            grpc.aio.insecure_channel(f"127.0.0.1:{outer_server.port}") as channel,
        ):
            caller = context.Principal(subject="users/7", kind="api_key", scopes=frozenset({"jobs:read"}))
            await call(channel, "Outer", "Handle")(
                b"x",
                metadata=[("x-request-id", "req-two-hops"), ("x-comfyapi-principal", caller.to_header())],
            )
        await inner_channel.close()

    assert seen == {"request_id": "req-two-hops", "principal": caller}
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    finished = [r for r in records if r["event"] == "rpc.finished"]
    assert {r["method"] for r in finished} == {"/test.Inner/Handle", "/test.Outer/Handle"}
    assert all(r["request_id"] == "req-two-hops" and r["principal"] == "users/7" for r in finished)
    assert any(r["event"] == "inner.handled" and r["request_id"] == "req-two-hops" for r in records)


async def test_a_domain_error_two_hops_away_keeps_its_code_and_reason() -> None:
    async def inner(request: bytes, ctx: Any) -> bytes:
        raise errors.NotFound("job jobs/1 does not exist", reason="JOB_NOT_FOUND", metadata={"job": "jobs/1"})

    async with serving(app("Inner", {"Handle": inner})) as inner_server:
        inner_channel = open_channel(f"127.0.0.1:{inner_server.port}")

        async def outer(request: bytes, ctx: Any) -> bytes:
            try:
                return await call(inner_channel, "Inner", "Handle")(request)
            except grpc.aio.AioRpcError as exc:
                raise status.from_rpc_error(exc) from None

        async with (
            serving(app("Outer", {"Handle": outer})) as outer_server,
            grpc.aio.insecure_channel(f"127.0.0.1:{outer_server.port}") as channel,
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(channel, "Outer", "Handle")(b"x")
        await inner_channel.close()

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "job jobs/1 does not exist"
    received = status.from_rpc_error(raised.value)
    assert (received.reason, received.metadata) == ("JOB_NOT_FOUND", {"job": "jobs/1"})


async def test_streaming_methods_map_domain_errors_after_their_first_messages() -> None:
    async def events(request: bytes, ctx: Any) -> Any:
        yield b"first"
        raise errors.FailedPrecondition("backend lost", reason="BACKEND_LOST", retry_after=2.0)

    async with (
        serving(app("Stream", {}, {"Events": events})) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for message in channel.unary_stream("/test.Stream/Events")(b""):
                received.append(message)
    assert received == [b"first"]
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = status.from_rpc_error(raised.value)
    assert (error.reason, error.retry_after) == ("BACKEND_LOST", 2.0)


async def test_an_unexpected_exception_is_internal_without_its_text() -> None:
    async def crash(request: bytes, ctx: Any) -> bytes:
        raise RuntimeError("password=hunter2 leaked")

    async with (
        serving(app("Crash", {"Handle": crash})) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(channel, "Crash", "Handle")(b"", metadata=[("x-request-id", "req-crash")])
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in (raised.value.details() or "")
    details = dict(raised.value.trailing_metadata())[status.DETAILS_KEY]
    info = error_details_pb2.ErrorInfo()
    status_pb2.Status.FromString(details).details[0].Unpack(info)
    assert info.metadata["request_id"] == "req-crash"


async def test_metrics_count_calls_by_method_and_code() -> None:
    async def ok(request: bytes, ctx: Any) -> bytes:
        return b""

    async def missing(request: bytes, ctx: Any) -> bytes:
        raise errors.NotFound("gone", reason="GONE")

    instruments = metrics.create()
    port = free_port()
    instruments.serve("127.0.0.1", port)
    server = GrpcServer(app("Metered", {"Ok": ok, "Missing": missing}), instruments, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await call(channel, "Metered", "Ok")(b"")
            await call(channel, "Metered", "Ok")(b"")
            with pytest.raises(grpc.aio.AioRpcError):
                await call(channel, "Metered", "Missing")(b"")
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        await server.stop(0.5)
    assert 'comfyapi_grpc_server_handled_total{code="OK",method="/test.Metered/Ok"} 2.0' in text
    assert 'comfyapi_grpc_server_handled_total{code="NOT_FOUND",method="/test.Metered/Missing"} 1.0' in text
    assert 'comfyapi_grpc_server_handling_seconds_count{method="/test.Metered/Ok"} 2.0' in text


async def test_graceful_shutdown_finishes_the_call_in_flight_and_refuses_new_ones() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    closed: list[str] = []

    async def slow(request: bytes, ctx: Any) -> bytes:
        started.set()
        await release.wait()
        return b"finished"

    async def close_pool() -> None:
        closed.append("pool")

    service = app("Slow", {"Handle": slow})
    service.closers.append(close_pool)
    async with serving(service, grace=10.0) as server:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        in_flight = asyncio.ensure_future(call(channel, "Slow", "Handle")(b""))
        await started.wait()
        stopping = asyncio.create_task(server.stop(10.0))
        await asyncio.sleep(0.2)  # let stop() reach the drain; the in-flight call holds it there
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as fresh:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(fresh, "Slow", "Handle")(b"", timeout=5)
        assert closed == [], "pools must stay open while calls drain"
        release.set()
        assert await in_flight == b"finished"
        await stopping
        await channel.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert closed == ["pool"]
