"""REST routes of developer webhooks: a job's delivery log, redelivery, and the account's signing secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from google.protobuf import duration_pb2
from pydantic import BaseModel, ConfigDict, Field

from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb
from gateway.api.jobs import ERRORS, JOBS_READ, JOBS_WRITE
from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, require_scope
from gateway.job_views import IDEMPOTENCY_HEADER, JOB_ID_PATTERN, timeout, to_json
from servicekit.logging import get_logger

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
log = get_logger("gateway.webhooks")
WEBHOOKS_MANAGE = "webhooks:manage"
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The id in the job's name `jobs/{id}`.")]
DeliveryId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The id of the delivery.")]
Manager = Annotated[Authenticated, Depends(require_scope(WEBHOOKS_MANAGE))]


class RotateBody(BaseModel):
    """How long the previous secret keeps signing next to the new one."""

    model_config = ConfigDict(extra="forbid")

    previous_secret_grace_seconds: int | None = Field(
        None, ge=0, le=7 * 86400, description="0 revokes the previous secret at once; omit for 24 hours."
    )


@router.get(
    "/jobs/{job_id}/webhook-deliveries",
    openapi_extra=SECURED,
    summary="The webhook deliveries of one of your jobs, newest first, with every attempt's outcome",
    responses=ERRORS,
)
async def list_deliveries(
    request: Request,
    _: Annotated[Authenticated, Depends(require_scope(JOBS_READ))],
    job_id: JobId,
    page_size: int = Query(0, ge=0, le=100, description="Deliveries per page; 0 means 50."),
    page_token: str = Query("", max_length=2000, description="next_page_token of the previous page."),
) -> dict[str, Any]:
    reply = await request.app.state.backends.jobs.ListWebhookDeliveries(
        jobs_pb.ListWebhookDeliveriesRequest(
            parent=f"jobs/{job_id}", page_size=page_size, page_token=page_token
        ),
        timeout=timeout(request),
    )
    return {"deliveries": [to_json(d) for d in reply.deliveries], "next_page_token": reply.next_page_token}


@router.post(
    "/jobs/{job_id}/webhook-deliveries/{delivery_id}/redeliver",
    openapi_extra=SECURED,
    summary="Send a finished delivery's event again (same event id, new delivery)",
    status_code=202,
    responses=ERRORS,
)
async def redeliver(
    request: Request,
    _: Annotated[Authenticated, Depends(require_scope(JOBS_WRITE))],
    job_id: JobId,
    delivery_id: DeliveryId,
) -> JSONResponse:
    reply = await request.app.state.backends.jobs.RedeliverWebhook(
        jobs_pb.RedeliverWebhookRequest(
            name=f"jobs/{job_id}/webhookDeliveries/{delivery_id}",
            request_id=request.headers.get(IDEMPOTENCY_HEADER, ""),
        ),
        timeout=timeout(request),
    )
    log.info("webhook.redelivery_requested", delivery=reply.delivery.name)
    return JSONResponse(to_json(reply.delivery), status_code=202)


@router.get(
    "/webhook-secret",
    openapi_extra=SECURED,
    summary="Your webhook signing secret, masked",
    responses={404: {"description": "No secret yet; rotate to create one"}, **ERRORS},
)
async def get_secret(request: Request, _: Manager) -> dict[str, Any]:
    reply = await request.app.state.backends.jobs.GetWebhookSecret(
        jobs_pb.GetWebhookSecretRequest(), timeout=timeout(request)
    )
    return to_json(reply.secret)


@router.post(
    "/webhook-secret/rotate",
    openapi_extra=SECURED,
    summary="Create or rotate your webhook signing secret; the full secret is in this response only",
    responses=ERRORS,
)
async def rotate_secret(request: Request, _: Manager, body: RotateBody | None = None) -> dict[str, Any]:
    message = jobs_pb.RotateWebhookSecretRequest(request_id=request.headers.get(IDEMPOTENCY_HEADER, ""))
    if body is not None and body.previous_secret_grace_seconds is not None:
        message.previous_secret_grace_period.CopyFrom(
            duration_pb2.Duration(seconds=body.previous_secret_grace_seconds)
        )
    reply = await request.app.state.backends.jobs.RotateWebhookSecret(message, timeout=timeout(request))
    log.info("webhook_secret.rotated", version=reply.secret.version)
    return {"secret": to_json(reply.secret), "plaintext_secret": reply.plaintext_secret}
