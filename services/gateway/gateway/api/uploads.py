"""`POST /api/v1/uploads`: a multipart image upload that becomes an input reference for jobs."""

from __future__ import annotations

import sys
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, require_scope
from gateway.errors import EdgeError, violation
from gateway.uploads import Uploads
from servicekit import errors
from servicekit.logging import get_logger

router = APIRouter(prefix="/api/v1", tags=["uploads"])


class InMemoryParts(MultiPartParser):
    """Keeps a file part in memory instead of spooling it to disk past 1 MiB: the body limit already caps
    the part, and the route reads the whole image anyway, so a disk copy only added a write and a read
    (about 8 ms for a 3 MB photo)."""

    spool_max_size = sys.maxsize


log = get_logger("gateway.uploads")
UPLOADS_WRITE = "uploads:write"
FIELD = "file"
UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/uploads",
    openapi_extra={**SECURED, **UPLOAD_DOC},
    summary="Upload an input image (PNG, JPEG or WebP) in the multipart field `file`",
    status_code=201,
    responses={
        201: {"description": "The input reference: upload_id, upload_key, content_type, size, sha256, width"},
        400: {"description": "No `file` field"},
        413: {"description": "The image is over the size limit, which the error names"},
        415: {"description": "The file is not an image, or not the type it claims"},
    },
)
async def upload(
    request: Request, caller: Annotated[Authenticated, Depends(require_scope(UPLOADS_WRITE))]
) -> JSONResponse:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise EdgeError(
            415,
            "send the image as multipart/form-data in the field `file`",
            reason="UNSUPPORTED_MEDIA_TYPE",
            violations=violation(FIELD, "multipart/form-data expected"),
        )
    try:
        form = await InMemoryParts(request.headers, request.stream(), max_files=1, max_fields=4).parse()
    except MultiPartException as exc:
        raise errors.InvalidArgument(
            f"the multipart body is malformed: {exc.message}",
            reason="MULTIPART_INVALID",
            violations=violation(FIELD, exc.message),
        ) from None
    try:
        part = form.get(FIELD)
        if not isinstance(part, UploadFile):
            raise errors.InvalidArgument(
                "the multipart field `file` with an image is missing",
                reason="FIELD_MISSING",
                violations=violation(FIELD, "attach the image as a file"),
            )
        data = await part.read()
    finally:
        await form.close()
    uploads: Uploads = request.app.state.uploads
    stored = await uploads.store(
        caller.principal.subject, data, part.filename or "", part.content_type or "", FIELD
    )
    log.info("upload.stored", key=stored.upload_key, size=stored.size_bytes, content_type=stored.content_type)
    return JSONResponse(
        stored.to_json(), status_code=201, headers={"Location": f"/api/v1/uploads/{stored.upload_id}"}
    )
