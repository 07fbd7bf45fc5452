"""REST routes of the preset catalog, translated to JobService calls.

Preview images are files shipped with each preset version in the jobs context; JobService.GetPresetPreview
returns their bytes, which are served here with a strong entity tag (their SHA-256) so browsers and proxies
revalidate rather than download again. `preview_image_uri` is rewritten to this route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb
from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, require_scope
from gateway.job_views import to_json

router = APIRouter(prefix="/api/v1/presets", tags=["presets"])
PRESETS_READ = "presets:read"
Reader = Annotated[Authenticated, Depends(require_scope(PRESETS_READ))]
PresetId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="e.g. `cinematic`.")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key or session"},
    403: {"description": "The credential lacks the scope `presets:read`"},
}


def _preset_json(message: Any) -> dict[str, Any]:
    body = to_json(message)
    preset_id = message.name.removeprefix("presets/")
    uri = message.preview_image_uri
    if uri and not uri.startswith("https://"):
        body["preview_image_uri"] = f"/api/v1/presets/{preset_id}/preview?version={message.version}"
    return body


def _timeout(request: Request) -> float:
    return float(request.app.state.settings.backend_timeout_seconds)


@router.get("", openapi_extra=SECURED, summary="List the presets a job can run", responses=ERRORS)
async def list_presets(
    request: Request,
    _: Reader,
    page_size: int = Query(0, ge=0, le=100, description="Presets per page; 0 means 50."),
    page_token: str = Query("", max_length=200, description="next_page_token of the previous page."),
) -> dict[str, Any]:
    reply = await request.app.state.backends.jobs.ListPresets(
        jobs_pb.ListPresetsRequest(page_size=page_size, page_token=page_token), timeout=_timeout(request)
    )
    return {"presets": [_preset_json(p) for p in reply.presets], "next_page_token": reply.next_page_token}


@router.get(
    "/{preset_id}",
    openapi_extra=SECURED,
    summary="Get one preset with its typed parameters",
    responses={404: {"description": "No preset has this name"}, **ERRORS},
)
async def get_preset(
    request: Request,
    _: Reader,
    preset_id: str,
    version: int = Query(0, ge=0, description="Version to return; 0 means the latest."),
) -> dict[str, Any]:
    reply = await request.app.state.backends.jobs.GetPreset(
        jobs_pb.GetPresetRequest(name=f"presets/{preset_id}", version=version), timeout=_timeout(request)
    )
    return _preset_json(reply.preset)


@router.get(
    "/{preset_id}/preview",
    openapi_extra=SECURED,
    summary="The preset's example output image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, 404: {"description": "No preview"}},
)
async def get_preview(
    request: Request,
    _: Reader,
    preset_id: PresetId,
    version: int = Query(0, ge=0, description="Version whose preview to return; 0 means the latest."),
) -> Response:
    reply = await request.app.state.backends.jobs.GetPresetPreview(
        jobs_pb.GetPresetPreviewRequest(name=f"presets/{preset_id}", version=version),
        timeout=_timeout(request),
    )
    etag = f'"{reply.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(reply.image, media_type=reply.mime_type, headers=headers)
