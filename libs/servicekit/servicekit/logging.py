"""structlog configuration: one JSON object per line, with the service, request id and principal bound.

Keys that look like credentials are redacted by a processor, as a net under the rule that code never
logs secrets, tokens or image bytes in the first place.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from servicekit import context

_SECRET_MARKERS = (
    "password",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "credential",
)
REDACTED = "[redacted]"


def _add_call_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    rid = context.request_id()
    if rid:
        event.setdefault("request_id", rid)
    caller = context.principal()
    if caller is not None:
        event.setdefault("principal", caller.log_fields())
    return event


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_MARKERS) and value not in (None, ""):
            event[key] = REDACTED
        elif isinstance(value, bytes | bytearray):
            event[key] = f"<{len(value)} bytes>"
    return event


class _Stdout:
    """Whatever `sys.stdout` is at the time of writing, so redirected output (tests, reloads) is followed."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure(service: str, level: str = "info", fmt: str = "json") -> None:
    """Configures structlog and the standard logging module (used by libraries) for one service."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_call_context,
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_Stdout()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(_Stdout())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; `name` becomes the `logger` field."""
    return structlog.get_logger(name) if name else structlog.get_logger()
