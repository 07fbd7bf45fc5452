"""Object storage as the edge uses it: storing uploads and handing out short-lived download links.

Links to an S3 store are presigned GETs; links to a local directory point at the gateway's own
`/api/v1/files/{key}` route, signed with an HMAC of the key and the expiry time (servicekit.storage).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gateway.settings import GatewaySettings
from servicekit.logging import get_logger
from servicekit.storage import LinkSigner, LocalStorage, S3Storage

log = get_logger("gateway.files")
STATE_DIR = Path(".state") / "inference" / "storage"  # the same default as inference
FILES_ROUTE = "/api/v1/files/"


@dataclass
class Files:
    """The storage and the signer of its links."""

    storage: LocalStorage | S3Storage
    signer: LinkSigner
    ttl_seconds: int
    public_url: str = ""

    @classmethod
    def open(cls, settings: GatewaySettings) -> Files:
        """S3 when a bucket is configured, else the local directory the other services share."""
        storage: LocalStorage | S3Storage
        if settings.storage_s3_bucket:
            storage = S3Storage.connect(
                settings.storage_s3_bucket,
                settings.storage_s3_endpoint_url,
                settings.storage_s3_region,
                settings.storage_s3_access_key_id,
                settings.storage_s3_secret_access_key,
            )
        else:
            storage = LocalStorage(Path(settings.storage_dir) if settings.storage_dir else STATE_DIR)
        key = settings.files_signing_key.encode()
        if not key:
            if isinstance(storage, LocalStorage):
                log.warning("files.signing_key_generated", note="links work only on this replica")
            key = secrets.token_bytes(32)
        return cls(storage, LinkSigner(key), settings.download_url_ttl_seconds, settings.public_url)

    def download_url(self, key: str, filename: str, base_url: str) -> str:
        """A link that downloads `key` for the next ttl_seconds without further credentials."""
        presigned = self.storage.presigned_get(key, self.ttl_seconds, filename)
        if presigned is not None:
            return presigned
        expires = int(time.time()) + self.ttl_seconds
        base = (self.public_url or base_url).rstrip("/")
        signature = self.signer.sign(key, expires)
        return f"{base}{FILES_ROUTE}{quote(key)}?expires={expires}&signature={signature}"

    def local_path(self, key: str) -> Path | None:
        """The file of `key` when storage is a local directory and the file exists; None otherwise."""
        if not isinstance(self.storage, LocalStorage):
            return None
        path = self.storage.path(key)
        return path if os.path.isfile(path) else None
