"""Input images: stored under the caller's upload area, from a multipart upload or fetched from a URL.

Keys look like `uploads/{user_id}/{upload_id}/{filename}`; jobs accepts only keys in the caller's own area.
An image fetched for a request with an idempotency key gets an upload id derived from that key, so a replayed
request refers to the same stored object and jobs recognises it as the same request.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from gateway.errors import EdgeError, violation
from gateway.fetch import UrlFetcher
from gateway.files import Files
from gateway.images import safe_filename as safe_name
from gateway.images import sniff
from servicekit import errors

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Upload:
    """A stored input image, as the API describes it."""

    upload_id: str
    upload_key: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    width: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def user_id(owner: str) -> str:
    """The id in `users/{id}`."""
    return owner.removeprefix("users/")


class Uploads:
    """Stores input images for a caller."""

    def __init__(self, files: Files, fetcher: UrlFetcher, max_bytes: int, max_pixels: int) -> None:
        self.files = files
        self.fetcher = fetcher
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    async def store(
        self, owner: str, data: bytes, filename: str, declared: str, field: str, upload_id: str = ""
    ) -> Upload:
        """Checks the bytes and stores them; 413 over the size limit, 415 when they are not an image."""
        if len(data) > self.max_bytes:
            raise EdgeError(
                413,
                f"{field}: the image is larger than the limit of {self.max_bytes} bytes",
                reason="UPLOAD_TOO_LARGE",
                metadata={"limit_bytes": str(self.max_bytes)},
                violations=violation(field, f"at most {self.max_bytes} bytes"),
            )
        if not data:
            raise EdgeError(
                415,
                f"{field}: the file is empty",
                reason="UNSUPPORTED_MEDIA_TYPE",
                violations=violation(field, "the file is empty"),
            )
        facts = await asyncio.to_thread(sniff, data, field, self.max_pixels, declared)
        upload_id = upload_id or uuid.uuid4().hex
        name = safe_name(filename, facts.extension)
        key = f"uploads/{user_id(owner)}/{upload_id}/{name}"
        stored = await self.files.storage.put(key, data, facts.content_type)
        return Upload(
            upload_id, key, name, facts.content_type, stored.size, stored.sha256, facts.width, facts.height
        )

    async def from_url(self, owner: str, url: str, field: str, idempotency_key: str = "") -> str:
        """The upload key of the image at `url`, fetched (once per idempotency key) and stored."""
        upload_id = ""
        if idempotency_key:
            seed = f"{owner}\n{idempotency_key}\n{field}\n{url}".encode()
            upload_id = hashlib.sha256(seed).hexdigest()[:32]
            earlier = await self.files.storage.first_key(f"uploads/{user_id(owner)}/{upload_id}")
            if earlier is not None:
                return earlier
        fetched = await self.fetcher.fetch(url, field)
        upload = await self.store(
            owner, fetched.data, fetched.filename, fetched.content_type, field, upload_id
        )
        return upload.upload_key

    async def key_of(self, owner: str, upload_id: str, field: str) -> str:
        """The key of an earlier upload named by its id; 404 naming `field` when there is none."""
        found = None
        if UPLOAD_ID.match(upload_id):
            found = await self.files.storage.first_key(f"uploads/{user_id(owner)}/{upload_id}")
        if found is None:
            raise errors.NotFound(
                f"{field}: no upload {upload_id!r}",
                reason="UPLOAD_NOT_FOUND",
                metadata={"upload_id": upload_id[:64]},
                violations=violation(field, "upload an image first with POST /api/v1/uploads"),
            )
        return found
