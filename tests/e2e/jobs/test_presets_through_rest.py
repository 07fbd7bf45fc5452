"""A developer's main path through REST: upload a photo, run each photo preset, follow every event to the
end, and download outputs that are really edited the way the preset says."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.jobs.conftest import Developer, events, job_id, photo, pixels, upload

PHOTO_PRESETS = ("cinematic", "portrait_pro", "product_glow")


async def run_preset(
    dev: Developer, preset: str, key: str, **parameters: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    body = {
        "preset": {"name": preset, "parameters": parameters},
        "inputs": [{"name": "image", "upload_key": key}],
    }
    created = await dev.http.post("/api/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")  # a free dispatcher may be quick
    assert created.headers["location"] == f"/api/v1/{job['name']}"
    return job, await events(dev.http, job_id(job))


@pytest.mark.parametrize("preset", PHOTO_PRESETS)
async def test_each_photo_preset_runs_streams_every_event_and_edits_the_photo(
    developer: Developer, preset: str
) -> None:
    original = photo()
    uploaded = await upload(developer.http, original)
    assert uploaded["upload_key"].startswith("uploads/")
    assert (uploaded["width"], uploaded["height"], uploaded["content_type"]) == (96, 64, "image/png")

    job, stream = await run_preset(developer, preset, uploaded["upload_key"])

    ids = [int(e["id"]) for e in stream]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    names = [e["event"] for e in stream]
    assert names[-1] == "succeeded"
    assert "running" in names
    assert all(e["data"]["name"] == job["name"] for e in stream)
    final = stream[-1]["data"]
    (output,) = final["outputs"]
    assert output["content_type"] == "image/png"
    assert (output["width"], output["height"]) == (96, 64)

    async with httpx.AsyncClient() as anonymous:  # the signed link is the only credential needed
        download = await anonymous.get(output["download_url"])
    assert download.status_code == 200
    edited = pixels(download.content)
    before = pixels(original)
    assert abs(edited - before).mean() > 1.0, "the output is the input unchanged"
    if preset == "cinematic":
        assert edited.mean() < before.mean()  # darker
        assert abs(edited - before).std() > 1.0  # and grainy
    if preset == "product_glow":
        assert edited.mean() > before.mean()  # brighter
