"""Object storage: the local directory and an S3-compatible store (moto in server mode, through boto3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from servicekit import errors
from servicekit.storage import LocalStorage, S3Storage


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_url: str) -> S3Storage:
    storage = S3Storage.connect("inference-test", moto_url, "us-east-1", "test", "test")
    storage.client.create_bucket(Bucket="inference-test")
    return storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return LocalStorage(tmp_path) if request.param == "local" else request.getfixturevalue("s3")


async def test_an_object_written_is_read_back_with_its_digest(storage: Any) -> None:
    data = b"\x89PNG fake bytes"
    stored = await storage.put("outputs/u1/job/1/9/ComfyUI_00001_.png", data, "image/png")

    assert await storage.get("outputs/u1/job/1/9/ComfyUI_00001_.png") == data
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    await storage.check()


async def test_writing_the_same_key_again_overwrites(storage: Any) -> None:
    await storage.put("outputs/a.png", b"first", "image/png")
    await storage.put("outputs/a.png", b"second", "image/png")

    assert await storage.get("outputs/a.png") == b"second"


async def test_a_missing_object_is_input_not_found(storage: Any) -> None:
    with pytest.raises(errors.NotFound) as raised:
        await storage.get("uploads/none.png")

    assert raised.value.reason == "INPUT_NOT_FOUND"


@pytest.mark.parametrize("key", ["../escape.png", "/abs.png", "a/../../b.png", ""])
async def test_keys_that_escape_are_refused(storage: Any, key: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        await storage.put(key, b"x", "image/png")


async def test_s3_objects_carry_content_type_and_uri(s3: S3Storage) -> None:
    stored = await s3.put("outputs/u1/x.png", b"png", "image/png")
    head = s3.client.head_object(Bucket="inference-test", Key="outputs/u1/x.png")

    assert stored.uri == "s3://inference-test/outputs/u1/x.png"
    assert head["ContentType"] == "image/png"
    assert head["Metadata"]["sha256"] == stored.sha256


async def test_an_unreachable_s3_store_is_storage_unavailable() -> None:
    storage = S3Storage.connect("inference-test", "http://127.0.0.1:9", "us-east-1", "test", "test")
    with pytest.raises(errors.Unavailable) as raised:
        await storage.put("outputs/x.png", b"x", "image/png")

    assert raised.value.reason == "STORAGE_UNAVAILABLE"
