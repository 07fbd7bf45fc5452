"""Object storage for inputs and outputs: a local directory by default, any S3-compatible store via boto3.

Shared by every service that moves images: inference writes outputs and reads inputs, the gateway stores
uploads and hands out short-lived download links. S3 links are presigned GETs; a local directory has no
server of its own, so its links point at the gateway, signed with `LinkSigner` (HMAC-SHA256 over the key and
the expiry time).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import mimetypes
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from servicekit import errors


@dataclass(frozen=True)
class StoredObject:
    """An object written to storage."""

    key: str
    uri: str
    size: int
    sha256: str


def content_type_of(key: str) -> str:
    """The MIME type a key's file name suggests; `application/octet-stream` when it suggests none."""
    guessed, _ = mimetypes.guess_type(PurePosixPath(key).name)
    return guessed or "application/octet-stream"


def check_key(key: str) -> str:
    """`key` when it is a safe relative object key; INVALID_ARGUMENT otherwise."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or "\\" in key or ".." in parts or key.endswith("/"):
        raise errors.InvalidArgument(
            f"{key!r} is not a valid object-store key",
            reason="STORAGE_KEY_INVALID",
            metadata={"key": key[:200]},
        )
    return key


def _missing(key: str) -> errors.NotFound:
    return errors.NotFound(
        f"no object {key!r} in storage", reason="INPUT_NOT_FOUND", metadata={"key": key[:200]}
    )


def _unavailable(action: str, exc: BaseException) -> errors.Unavailable:
    return errors.Unavailable(
        f"object storage: {action} failed: {type(exc).__name__}",
        reason="STORAGE_UNAVAILABLE",
        retry_after=2.0,
    )


class LocalStorage:
    """Objects as files under one directory; keys are relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file holding `key` (which may not exist); INVALID_ARGUMENT for an unsafe key."""
        return self.root / check_key(key)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        return await asyncio.to_thread(self.path(key).is_file)

    async def first_key(self, prefix: str) -> str | None:
        """The first key (in name order) under the folder `prefix`, or None when it holds none."""
        folder = self.path(prefix.rstrip("/"))

        def scan() -> str | None:
            names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
            names = [n for n in names if not n.endswith(".partial")]
            return f"{prefix.rstrip('/')}/{names[0]}" if names else None

        try:
            return await asyncio.to_thread(scan)
        except OSError as exc:
            raise _unavailable("list", exc) from None

    def presigned_get(self, key: str, expires_in: int, filename: str = "") -> str | None:
        """None: a local directory has no server, so the caller signs a link to its own route instead."""
        check_key(key)
        return None

    async def get(self, key: str) -> bytes:
        """The object's bytes; NOT_FOUND reason INPUT_NOT_FOUND when absent."""
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise _missing(key) from None
        except OSError as exc:
            raise _unavailable("read", exc) from None

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Writes (or overwrites) the object atomically."""
        path = self.path(key)

        def write() -> str:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            partial.replace(path)
            return hashlib.sha256(data).hexdigest()  # here, off the event loop

        try:
            digest = await asyncio.to_thread(write)
        except OSError as exc:
            raise _unavailable("write", exc) from None
        return StoredObject(key, path.resolve().as_uri(), len(data), digest)

    async def check(self) -> None:
        """Raises when the directory cannot be used."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)


class S3Storage:
    """Objects in an S3-compatible bucket through boto3 (run in threads: boto3 blocks)."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    @classmethod
    def connect(
        cls, bucket: str, endpoint_url: str = "", region: str = "", access_key: str = "", secret_key: str = ""
    ) -> S3Storage:
        """A storage on `bucket`; empty arguments fall back to boto3's own configuration chain."""
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}),
        )
        return cls(bucket, client)

    async def get(self, key: str) -> bytes:
        """The object's bytes; NOT_FOUND reason INPUT_NOT_FOUND when absent."""
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        check_key(key)

        def read() -> bytes:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

        try:
            return await asyncio.to_thread(read)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise _missing(key) from None
            raise _unavailable("read", exc) from None
        except BotoCoreError as exc:
            raise _unavailable("read", exc) from None

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Writes (or overwrites) the object."""
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        check_key(key)
        digest = hashlib.sha256(data).hexdigest()
        try:
            await asyncio.to_thread(
                self.client.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata={"sha256": digest},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("write", exc) from None
        return StoredObject(key, f"s3://{self.bucket}/{key}", len(data), digest)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        check_key(key)
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise _unavailable("stat", exc) from None
        except BotoCoreError as exc:
            raise _unavailable("stat", exc) from None
        return True

    async def first_key(self, prefix: str) -> str | None:
        """The first key (in name order) under the folder `prefix`, or None when it holds none."""
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        folder = check_key(prefix.rstrip("/")) + "/"
        try:
            reply = await asyncio.to_thread(
                self.client.list_objects_v2, Bucket=self.bucket, Prefix=folder, MaxKeys=1
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("list", exc) from None
        contents = reply.get("Contents") or []
        return str(contents[0]["Key"]) if contents else None

    def presigned_get(self, key: str, expires_in: int, filename: str = "") -> str | None:
        """A presigned GET URL valid for `expires_in` seconds (computed locally, no request is made)."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": check_key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url

    async def check(self) -> None:
        """Raises when the bucket cannot be reached."""
        await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)


class LinkSigner:
    """Signs and verifies download links of a local directory: HMAC-SHA256 over the key and expiry.

    The signature binds the exact key and the expiry second, so a link cannot be stretched in time or pointed
    at another object; verification compares in constant time.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a link signing key needs at least 16 bytes")
        self._secret = secret

    def sign(self, key: str, expires: int) -> str:
        """The hex signature of `key` valid until the Unix time `expires`."""
        message = f"GET\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, signature: str, now: float) -> bool:
        """Whether `signature` is this signer's for `key` and `expires`, and `expires` is not past."""
        expected = self.sign(key, expires)
        valid = hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace"))
        return valid and now <= expires
