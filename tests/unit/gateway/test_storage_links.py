"""Download links of both storage kinds: presigned GETs from an S3-compatible store (moto in server mode,
through boto3) and the local directory's lookups the gateway relies on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from servicekit.storage import LocalStorage, S3Storage


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


async def test_a_presigned_link_downloads_the_object_and_a_tampered_one_does_not(moto_url: str) -> None:
    storage = S3Storage.connect("links-test", moto_url, "us-east-1", "test", "test")
    storage.client.create_bucket(Bucket="links-test")
    await storage.put("outputs/u1/j1/1/9/out.png", b"\x89PNG bytes", "image/png")

    link = storage.presigned_get("outputs/u1/j1/1/9/out.png", 60, "out.png")
    assert link is not None
    async with httpx.AsyncClient() as client:
        good = await client.get(link)
        tampered = await client.get(link.replace("out.png", "other.png", 1))
    assert good.content == b"\x89PNG bytes"
    assert 'filename="out.png"' in good.headers["content-disposition"]
    assert tampered.status_code == 403
    assert await storage.exists("outputs/u1/j1/1/9/out.png")
    assert not await storage.exists("outputs/u1/j1/1/9/none.png")
    assert await storage.first_key("outputs/u1/j1/1/9") == "outputs/u1/j1/1/9/out.png"
    assert await storage.first_key("outputs/u1/none") is None


async def test_a_local_directory_signs_no_links_of_its_own_and_finds_uploads(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("uploads/u1/abc/photo.png", b"png", "image/png")

    assert storage.presigned_get("uploads/u1/abc/photo.png", 60) is None
    assert await storage.first_key("uploads/u1/abc") == "uploads/u1/abc/photo.png"
    assert await storage.first_key("uploads/u1/zzz") is None
    assert await storage.exists("uploads/u1/abc/photo.png")
    assert storage.path("uploads/u1/abc/photo.png") == tmp_path / "uploads/u1/abc/photo.png"
