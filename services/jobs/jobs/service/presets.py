"""Use cases of the preset catalog: look one up, list them a page at a time."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from jobs.domain.presets import Preset
from servicekit import errors

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class PresetCatalog(Protocol):
    """Where presets come from; the files adapter and the unit tests' in-memory twin implement it."""

    def all(self) -> Sequence[Preset]:
        """Every preset, sorted by name."""
        ...


@runtime_checkable
class PreviewSource(Protocol):
    """Where preview images come from: the files shipped with each preset."""

    def preview(self, name: str, version: int) -> bytes | None:
        """The preview image of a preset version, or None when it has none."""
        ...


class PresetService:
    """Reads the catalog on behalf of API callers."""

    def __init__(self, catalog: PresetCatalog, previews: PreviewSource | None = None) -> None:
        self.catalog = catalog
        if previews is None and isinstance(catalog, PreviewSource):
            previews = catalog
        self.previews = previews

    def preview(self, name: str, version: int = 0) -> tuple[bytes, str]:
        """The preview image of a preset version and its MIME type; NotFound when there is none."""
        preset = self.get(name, version)
        image = self.previews.preview(preset.name, preset.version) if self.previews else None
        if image is None or not preset.preview_image:
            raise errors.NotFound(
                f"preset {name!r} has no preview image",
                reason="PREVIEW_NOT_FOUND",
                metadata={"preset": name},
            )
        mime_type, _ = mimetypes.guess_type(preset.preview_image)
        return image, mime_type or "application/octet-stream"

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
