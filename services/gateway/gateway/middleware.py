"""ASGI middleware of the edge: request id, call context, one access log line and metrics per request."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit import context
from servicekit.logging import get_logger
from servicekit.metrics import Metrics

log = get_logger("gateway.http")
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


class RequestContext:
    """Binds a request id (the client's `X-Request-ID` when sane) and echoes it on the response."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = context.clean_request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        started = time.perf_counter()
        code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        with context.bound(rid, None):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._finish(scope, code, time.perf_counter() - started)

    def _finish(self, scope: Scope, code: int, elapsed: float) -> None:
        route: Any = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.observe(f"{scope['method']} {path}", str(code), elapsed)
        if scope["path"] not in QUIET_PATHS:
            log.info(
                "http.finished",
                method=scope["method"],
                path=path,
                status=code,
                duration_ms=round(elapsed * 1000, 2),
            )
