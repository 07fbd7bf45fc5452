"""Checking that bytes are an image the platform accepts, and naming the stored file safely.

The content is sniffed with Pillow from the bytes themselves; a declared content type is only compared with
what the bytes are, never believed. Only formats that ComfyUI's LoadImage reads are accepted.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError

from gateway.errors import EdgeError, violation

FORMATS = {"PNG": ("image/png", ".png"), "JPEG": ("image/jpeg", ".jpg"), "WEBP": ("image/webp", ".webp")}
# Declared types that say nothing about the content and so cannot contradict it.
UNINFORMATIVE_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
SAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 80


@dataclass(frozen=True)
class ImageFacts:
    """What the bytes are."""

    content_type: str
    extension: str
    width: int
    height: int


def sniff(data: bytes, field: str, max_pixels: int, declared: str = "") -> ImageFacts:
    """The facts of an accepted image; 415 naming `field` for anything else, 413 past the pixel limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format or "", image.size
                if kind in FORMATS and width * height <= max_pixels:
                    image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        kind, width, height = "", 0, 0
    except (OSError, SyntaxError, ValueError) as exc:
        raise _unsupported(field, f"the image is damaged: {str(exc)[:120]}") from None
    if kind not in FORMATS:
        raise _unsupported(field, "not a PNG, JPEG or WebP image")
    if width * height > max_pixels:
        raise EdgeError(
            413,
            f"{field}: the image has {width}x{height} pixels, over the limit of {max_pixels}",
            reason="IMAGE_TOO_LARGE",
            metadata={"limit_pixels": str(max_pixels)},
            violations=violation(field, f"at most {max_pixels} pixels"),
        )
    content_type, extension = FORMATS[kind]
    stated = declared.split(";")[0].strip().lower()
    if stated not in UNINFORMATIVE_TYPES and stated != content_type and stated != "image/jpg":
        raise _unsupported(field, f"declared as {stated} but the bytes are {content_type}")
    return ImageFacts(content_type, extension, width, height)


def _unsupported(field: str, description: str) -> EdgeError:
    return EdgeError(
        415,
        f"{field}: {description}",
        reason="UNSUPPORTED_MEDIA_TYPE",
        metadata={"accepted": ",".join(t for t, _ in FORMATS.values())},
        violations=violation(field, description),
    )


def safe_filename(name: str, extension: str) -> str:
    """A file name made of [A-Za-z0-9._-] only, no directories or leading dots, ending in `extension`."""
    base = PurePosixPath(name.replace("\\", "/")).name
    stem = SAFE_CHARACTERS.sub("_", PurePosixPath(base).stem).strip("._")[:MAX_STEM]
    return f"{stem or 'image'}{extension}"
