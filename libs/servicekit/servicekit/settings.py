"""Frozen settings read once from the environment.

A service declares its settings as a frozen dataclass; each field is read from the environment variable of
the same name in upper case. Fields without a default are required. `load` reports every missing or
malformed variable in one message, so a misconfigured deployment fails at start with the whole list.
Secrets are declared with `secret()` so they never appear in a repr or a log line.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(Exception):
    """The environment lacks required settings or has malformed ones; the message lists them all."""


def secret(default: Any = dataclasses.MISSING) -> Any:
    """Declares a setting whose value is kept out of reprs and logs."""
    return dataclasses.field(default=default, repr=False)


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected one of true/false/1/0/yes/no/on/off")


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _parser(annotation: Any) -> Callable[[str], Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _parser(inner)
    if origin is tuple:
        return _parse_list
    if annotation is bool:
        return _parse_bool
    if annotation in (int, float, str):
        return typing.cast(Callable[[str], Any], annotation)
    raise TypeError(f"unsupported settings type {annotation!r}")


def load(cls: type[T], environ: Mapping[str, str]) -> T:
    """Builds `cls` from `environ`, raising SettingsError that names every missing or malformed key."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    missing: list[str] = []
    malformed: list[str] = []
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = spec.name.upper()
        raw = environ.get(key)
        if raw is None or raw == "":
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                missing.append(key)
            continue
        try:
            values[spec.name] = _parser(hints[spec.name])(raw)
        except ValueError as exc:
            malformed.append(f"{key} ({exc})")
    problems = []
    if missing:
        problems.append("missing required settings: " + ", ".join(missing))
    if malformed:
        problems.append("malformed settings: " + ", ".join(malformed))
    if problems:
        raise SettingsError(f"{cls.__name__}: " + "; ".join(problems))
    return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """Settings every gRPC service shares; each service extends this with its own fields and defaults."""

    service_name: str
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    metrics_port: int = 9100
    log_level: str = "info"
    log_format: str = "json"
    shutdown_grace_seconds: float = 20.0
    readiness_interval_seconds: float = 5.0
    dependency_timeout_seconds: float = 60.0
