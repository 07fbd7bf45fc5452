"""Object storage for inputs and outputs: a local directory by default, any S3-compatible store via boto3."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

from inference.service.ports import StoredObject
from servicekit import errors

CONTENT_TYPE_SUFFIX = ".content-type"


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

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def get(self, key: str) -> bytes:
        """The object's bytes; NOT_FOUND reason INPUT_NOT_FOUND when absent."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise _missing(key) from None
        except OSError as exc:
            raise _unavailable("read", exc) from None

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Writes (or overwrites) the object atomically."""
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            partial.replace(path)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise _unavailable("write", exc) from None
        return StoredObject(key, path.resolve().as_uri(), len(data), hashlib.sha256(data).hexdigest())

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

    async def check(self) -> None:
        """Raises when the bucket cannot be reached."""
        await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
