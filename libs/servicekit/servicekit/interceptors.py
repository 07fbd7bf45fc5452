"""gRPC interceptors: call context, one log line and metrics per call, and domain error mapping.

The server interceptor reads the request id and principal from metadata into the call context, maps a
DomainError raised by a servicer (unary or streaming) to a rich gRPC status, a database connection found
closed to UNAVAILABLE (retryable), anything else unexpected to INTERNAL without leaking its text, and
records `rpc.finished` with code and duration. The client interceptors copy the context into outgoing
metadata so it survives every hop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from sqlalchemy.exc import DBAPIError

from servicekit import context, errors, status
from servicekit.logging import get_logger
from servicekit.metrics import Metrics

log = get_logger("servicekit.rpc")
QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
INTERNAL_MESSAGE = "internal error; the request id in the logs has the details"


class _Call:
    """Bookkeeping of one call: binds its context, classifies its outcome, logs and measures it."""

    def __init__(self, metrics: Metrics, method: str, details: grpc.HandlerCallDetails) -> None:
        self.metrics = metrics
        self.method = method
        self.request_id, self.principal = context.from_metadata(details.invocation_metadata)
        self.started = time.perf_counter()

    def bind(self) -> None:
        # Each RPC runs in its own task, so setting the variables here never leaks into another call.
        context._request_id.set(self.request_id)
        context._principal.set(self.principal)

    async def fail(self, exc: BaseException, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Aborts the call with the status `exc` stands for; always raises."""
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            exc = errors.Unavailable("the database connection was lost; retry", reason="DATABASE_UNAVAILABLE")
        if isinstance(exc, errors.DomainError):
            self.finish(exc.code, reason=exc.reason)
            await ctx.abort(status.grpc_code(exc), exc.message, status.trailing_metadata(exc))
        log.exception("rpc.crashed", method=self.method)
        internal = errors.Internal(
            INTERNAL_MESSAGE, reason="INTERNAL", metadata={"request_id": self.request_id}
        )
        self.finish(internal.code, reason=internal.reason)
        await ctx.abort(grpc.StatusCode.INTERNAL, internal.message, status.trailing_metadata(internal))

    def finish(self, code: str, reason: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        self.metrics.observe(self.method, code, elapsed)
        if self.method.startswith(QUIET_PREFIXES):
            return
        fields: dict[str, Any] = {
            "method": self.method,
            "code": code,
            "duration_ms": round(elapsed * 1000, 2),
        }
        if reason:
            fields["reason"] = reason
        if code in ("INTERNAL", "UNKNOWN", "DATA_LOSS"):
            log.error("rpc.finished", **fields)
        else:
            log.info("rpc.finished", **fields)


def _aborted_code(ctx: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = ctx.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler of a server, whatever its streaming shape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        make = functools.partial(_Call, self.metrics, handler_call_details.method, handler_call_details)
        if handler.unary_unary:
            return handler._replace(unary_unary=_wrap_unary(handler.unary_unary, make))  # type: ignore[attr-defined, no-any-return]
        if handler.stream_unary:
            return handler._replace(stream_unary=_wrap_unary(handler.stream_unary, make))  # type: ignore[attr-defined, no-any-return]
        if handler.unary_stream:
            return handler._replace(unary_stream=_wrap_stream(handler.unary_stream, make))  # type: ignore[attr-defined, no-any-return]
        return handler._replace(stream_stream=_wrap_stream(handler.stream_stream, make))  # type: ignore[attr-defined, no-any-return]


def _wrap_unary(behavior: Any, make: Callable[[], _Call]) -> Any:
    async def unary(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = make()
        call.bind()
        try:
            response = await behavior(request, ctx)
        except grpc.aio.AbortError:
            call.finish(_aborted_code(ctx))
            raise
        except asyncio.CancelledError:
            call.finish("CANCELLED")
            raise
        except Exception as exc:
            await call.fail(exc, ctx)
        call.finish("OK")
        return response

    return unary


def _wrap_stream(behavior: Any, make: Callable[[], _Call]) -> Any:
    async def stream(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        call = make()
        call.bind()
        try:
            async for item in behavior(request, ctx):
                yield item
        except grpc.aio.AbortError:
            call.finish(_aborted_code(ctx))
            raise
        except (asyncio.CancelledError, GeneratorExit):
            call.finish("CANCELLED")
            raise
        except Exception as exc:
            await call.fail(exc, ctx)
        call.finish("OK")

    return stream


def _with_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    present = {key for key, _ in metadata}
    for key, value in context.to_metadata():
        if key not in present:
            metadata[key] = value
    return details._replace(metadata=metadata)  # type: ignore[attr-defined, no-any-return]


class _ContextUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_context(details), request)


class _ContextUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_context(details), request)


class _ContextStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_context(details), request_iterator)


class _ContextStreamStream(grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_context(details), request_iterator)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that carry the request id and principal into every outgoing call."""
    return [_ContextUnaryUnary(), _ContextUnaryStream(), _ContextStreamUnary(), _ContextStreamStream()]
