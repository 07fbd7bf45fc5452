"""Request body size limits, enforced while the body is read and before anything parses it.

A declared Content-Length over the limit is refused at once without reading a byte; a body without one (or
lying about it) is counted as it streams in, and the read that crosses the limit raises, so a route never
holds more than the limit in memory. Upload routes get the upload limit plus room for the multipart framing.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors as http_errors

MULTIPART_OVERHEAD = 64 * 1024
UPLOAD_PATHS = ("/api/v1/uploads",)


def too_large(limit: int) -> http_errors.EdgeError:
    """The 413 naming the limit."""
    return http_errors.EdgeError(
        413,
        f"the request body is larger than the limit of {limit} bytes",
        reason="BODY_TOO_LARGE",
        metadata={"limit_bytes": str(limit)},
    )


class BodyLimit:
    """Pure ASGI middleware; `limit_for(path)` says how many body bytes a path may receive."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await http_errors.domain_response(too_large(limit))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            # The HTTP server has already refused a malformed value; counting covers anything else.
            return int(value) if value.isdigit() else None
    return None


def path_limits(max_body_bytes: int, upload_max_bytes: int) -> Callable[[str], int]:
    """The limit of each path: uploads get theirs plus framing, everything else the body limit."""
    upload_limit = upload_max_bytes + MULTIPART_OVERHEAD

    def limit_for(path: str) -> int:
        return upload_limit if path.startswith(UPLOAD_PATHS) else max_body_bytes

    return limit_for
