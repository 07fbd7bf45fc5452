"""REST routes of the preset catalog, translated to JobService calls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from google.protobuf.json_format import MessageToDict

from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb

router = APIRouter(prefix="/api/v1/presets", tags=["presets"])


def _json(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


@router.get("", summary="List the presets a job can run")
async def list_presets(
    request: Request,
    page_size: int = Query(0, ge=0, le=100, description="Presets per page; 0 means 50."),
    page_token: str = Query("", max_length=200, description="next_page_token of the previous page."),
) -> dict[str, Any]:
    state = request.app.state
    reply = await state.backends.jobs.ListPresets(
        jobs_pb.ListPresetsRequest(page_size=page_size, page_token=page_token),
        timeout=state.settings.backend_timeout_seconds,
    )
    return _json(reply)


@router.get(
    "/{preset_id}",
    summary="Get one preset with its typed parameters",
    responses={404: {"description": "No preset has this name"}},
)
async def get_preset(
    request: Request,
    preset_id: str,
    version: int = Query(0, ge=0, description="Version to return; 0 means the latest."),
) -> dict[str, Any]:
    state = request.app.state
    reply = await state.backends.jobs.GetPreset(
        jobs_pb.GetPresetRequest(name=f"presets/{preset_id}", version=version),
        timeout=state.settings.backend_timeout_seconds,
    )
    return _json(reply.preset)
