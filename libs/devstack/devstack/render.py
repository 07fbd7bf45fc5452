"""Turns the services' JSON log lines into readable ones: `HH:MM:SS service  level  event key=value`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

RESET = "\x1b[0m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
SERVICE_COLORS = tuple(f"\x1b[{code}m" for code in (36, 35, 34, 32, 33, 96, 95, 94))
LEVEL_COLORS = {
    "debug": DIM,
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;31m",
}
LEVEL_NAMES = {"warning": "warn", "critical": "crit", "exception": "error"}
# Keys shown in the line's fixed columns, or dropped because the column already says it.
SHOWN_KEYS = {"timestamp", "level", "log_level", "event", "service", "logger"}
# Multi-line values printed below the line, indented.
BLOCK_KEYS = ("exception", "stack", "exc_info")


class Renderer:
    """Formats lines for one terminal: services padded to one width, colors only when `color` is true."""

    def __init__(self, names: list[str], color: bool) -> None:
        self.width = max(len(n) for n in names)
        self.color = color
        self._service_colors = {n: SERVICE_COLORS[i % len(SERVICE_COLORS)] for i, n in enumerate(names)}

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color and code else text

    def line(self, service: str, raw: str) -> str:
        """One output line of `service`, rendered; non-JSON text is kept as is, behind the service's name."""
        record = _parse(raw)
        name = self._paint(service.ljust(self.width), self._service_colors.get(service, BOLD))
        if record is None:
            return f"{self._paint(_clock(None), DIM)} {name}  {raw}"
        level = str(record.get("level") or record.get("log_level") or "info").lower()
        head = " ".join(
            [
                self._paint(_clock(record.get("timestamp")), DIM),
                name,
                self._paint(LEVEL_NAMES.get(level, level).ljust(5), LEVEL_COLORS.get(level, "")),
                self._paint(str(record.get("event", "")), BOLD if level in ("error", "critical") else ""),
            ]
        )
        fields = [
            f"{self._paint(key + '=', DIM)}{_value(value)}"
            for key, value in record.items()
            if key not in SHOWN_KEYS and key not in BLOCK_KEYS
        ]
        if record.get("service") not in (None, service):
            fields.insert(0, f"{self._paint('service=', DIM)}{_value(record['service'])}")
        blocks = [
            "\n".join("    " + row for row in str(record[key]).rstrip().splitlines())
            for key in BLOCK_KEYS
            if record.get(key)
        ]
        return "\n".join([" ".join([head, *fields]), *blocks])


def _parse(raw: str) -> dict[str, Any] | None:
    if not raw.startswith("{"):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "event" in record else None


def _clock(timestamp: object) -> str:
    """Local wall-clock time of a record: structlog's ISO timestamps, Unix seconds, or now when absent."""
    moment = datetime.now()
    if isinstance(timestamp, int | float):
        moment = datetime.fromtimestamp(timestamp)
    elif isinstance(timestamp, str):
        try:
            moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            return timestamp[:8]
        if moment.tzinfo is not None:
            moment = moment.astimezone()
    return moment.strftime("%H:%M:%S")


def _value(value: object) -> str:
    if isinstance(value, str):
        return value if value and not any(c in value for c in ' ="\n') else json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))
