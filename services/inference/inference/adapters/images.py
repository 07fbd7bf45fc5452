"""Reading image headers with Pillow: is it an image, what type, how large."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from inference.service.ports import ImageInfo

FORMAT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def probe(data: bytes) -> ImageInfo | None:
    """The image's type and size, or None when the bytes are not an image Pillow can decode."""
    try:
        # Opening reads only the header (format and size); a full decode costs more than the job's overhead.
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    content_type = FORMAT_TYPES.get(fmt, f"image/{fmt.lower()}" if fmt else "application/octet-stream")
    return ImageInfo(content_type, width, height, "." + ("jpg" if fmt == "JPEG" else fmt.lower() or "bin"))
