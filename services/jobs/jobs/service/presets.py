"""Use cases of the preset catalog: look one up, list them a page at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from jobs.domain.presets import Preset
from servicekit import errors

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class PresetCatalog(Protocol):
    """Where presets come from; the files adapter and the unit tests' in-memory twin implement it."""

    def all(self) -> Sequence[Preset]:
        """Every preset, sorted by name."""
        ...


class PresetService:
    """Reads the catalog on behalf of API callers."""

    def __init__(self, catalog: PresetCatalog) -> None:
        self.catalog = catalog

    def get(self, name: str, version: int = 0) -> Preset:
        """The preset called `name` at `version` (0: the latest); NotFound names what is missing."""
        for preset in self.catalog.all():
            if preset.name != name:
                continue
            if version in (0, preset.version):
                return preset
            raise errors.NotFound(
                f"preset {name!r} has no version {version}; the latest is {preset.version}",
                reason="PRESET_VERSION_NOT_FOUND",
                metadata={"preset": name, "version": str(version)},
            )
        raise errors.NotFound(
            f"preset {name!r} does not exist", reason="PRESET_NOT_FOUND", metadata={"preset": name}
        )

    def list(self, page_size: int, page_token: str) -> tuple[list[Preset], str]:
        """One page of presets by name; the token is the last name of the previous page."""
        if page_size < 0:
            raise errors.InvalidArgument(
                "page_size must not be negative",
                reason="INVALID_PAGE_SIZE",
                violations=(errors.FieldViolation("page_size", "must be >= 0"),),
            )
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        remaining = [p for p in self.catalog.all() if p.name > page_token]
        page = remaining[:size]
        return page, page[-1].name if len(remaining) > size else ""
