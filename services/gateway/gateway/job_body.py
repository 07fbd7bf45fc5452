"""The JSON body of `POST /api/v1/jobs` and `/api/v1/generate`, parsed into a CreateJobRequest.

The body is parsed by hand with `json.loads`, which keeps integers exact, so a 64-bit seed in a workflow or
a parameter is forwarded digit for digit (the workflow travels on as JSON text); nothing goes through a
float. Every problem is a 400 naming the field as the client wrote it (`inputs[0].url`,
`preset.parameters["strength"]`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from google.protobuf import timestamp_pb2
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from comfyapi.jobs.v1 import job_pb2, preset_pb2
from comfyapi.jobs.v1 import jobs_service_pb2 as jobs_pb
from gateway.errors import violation
from servicekit import errors

INT64 = (-(2**63), 2**63 - 1)
PRIORITIES = {
    "low": job_pb2.JOB_PRIORITY_LOW,
    "normal": job_pb2.JOB_PRIORITY_NORMAL,
    "high": job_pb2.JOB_PRIORITY_HIGH,
}


class PresetBody(BaseModel):
    """A preset to run: its name (`portrait_pro` or `presets/portrait_pro`), version and parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    version: StrictInt = Field(0, ge=0, description="0 means the latest version.")
    parameters: dict[str, Any] = Field(default_factory=dict)


class InputBody(BaseModel):
    """One input image: an earlier upload (by key or id) or a URL the gateway fetches."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, description="The preset's image parameter or the workflow file.")
    node_id: str = Field("", max_length=64, description="For workflows: the LoadImage node to feed.")
    upload_key: str = Field("", max_length=1024)
    upload_id: str = Field("", max_length=64)
    url: str = Field("", max_length=2048)

    @model_validator(mode="after")
    def one_source(self) -> InputBody:
        if sum(bool(v) for v in (self.upload_key, self.upload_id, self.url)) != 1:
            raise ValueError("set exactly one of upload_key, upload_id and url")
        return self


class WebhookBody(BaseModel):
    """Where to send signed notifications about the job, and which events."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    events: list[str] = Field(default_factory=list, max_length=8)


class JobBody(BaseModel):
    """What to run, on which inputs, with which priority, deadline, webhook and labels."""

    model_config = ConfigDict(extra="forbid")

    preset: PresetBody | None = None
    workflow: dict[str, Any] | None = Field(None, description="A ComfyUI workflow in API format.")
    inputs: list[InputBody] = Field(default_factory=list, max_length=16)
    priority: Literal["low", "normal", "high"] = "normal"
    deadline: AwareDatetime | None = Field(None, description="RFC 3339 time by which the job must finish.")
    webhook: WebhookBody | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def one_source(self) -> JobBody:
        if (self.preset is None) == (self.workflow is None):
            raise ValueError("set exactly one of preset and workflow")
        return self


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(raw: bytes) -> Any:
    """The parsed body; 400 for malformed JSON, with the position of the problem."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidArgument(
            f"the request body is not valid JSON: {exc}",
            reason="MALFORMED_JSON",
            violations=violation("body", str(exc)[:200]),
        ) from None


def field_name(loc: tuple[int | str, ...]) -> str:
    """`inputs[0].url`, `labels["env"]` or `preset.version` for a pydantic error location."""
    name = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            name += f"[{part}]"
        elif index and loc[index - 1] in ("labels", "parameters") and isinstance(loc[index - 1], str):
            name += f'["{part}"]'
        else:
            name += f".{part}" if name else part
    return name or "body"


def validated(model: type[BaseModel], data: Any) -> Any:
    """`data` as `model`; 400 naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = tuple(errors.FieldViolation(field_name(tuple(e["loc"])), e["msg"]) for e in exc.errors())
        first = found[0]
        raise errors.InvalidArgument(
            f"invalid request: {first.field}: {first.description}",
            reason="INVALID_REQUEST",
            violations=found,
        ) from None


def parameter_value(name: str, value: Any) -> preset_pb2.ParameterValue:
    """A typed parameter value; 400 naming `preset.parameters["name"]` for values no type carries."""
    field = f'preset.parameters["{name}"]'
    if isinstance(value, bool):
        return preset_pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise errors.InvalidArgument(
                f"{field}: {value} does not fit a signed 64-bit integer",
                reason="PARAMETER_INVALID",
                violations=violation(field, "outside the signed 64-bit range"),
            )
        return preset_pb2.ParameterValue(int_value=value)
    if isinstance(value, float):
        return preset_pb2.ParameterValue(float_value=value)
    if isinstance(value, str):
        return preset_pb2.ParameterValue(string_value=value)
    raise errors.InvalidArgument(
        f"{field}: expected a string, number or boolean",
        reason="PARAMETER_INVALID",
        violations=violation(field, "expected a string, number or boolean"),
    )


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def create_request(body: JobBody, request_id: str) -> jobs_pb.CreateJobRequest:
    """The CreateJobRequest of a validated body; inputs by URL or upload id are bound by the caller."""
    message = jobs_pb.CreateJobRequest(
        request_id=request_id, priority=PRIORITIES[body.priority], labels=body.labels
    )
    if body.preset is not None:
        name = body.preset.name
        message.preset.CopyFrom(
            job_pb2.PresetInvocation(
                preset=name if name.startswith("presets/") else f"presets/{name}",
                version=body.preset.version,
                parameters={k: parameter_value(k, v) for k, v in body.preset.parameters.items()},
            )
        )
    else:
        message.workflow_json = json.dumps(body.workflow, separators=(",", ":"), ensure_ascii=False)
    if body.deadline is not None:
        message.deadline.CopyFrom(timestamp(body.deadline))
    if body.webhook is not None:
        message.webhook.CopyFrom(job_pb2.WebhookConfig(url=body.webhook.url, events=body.webhook.events))
    for item in body.inputs:
        message.inputs.append(
            job_pb2.JobInput(name=item.name, node_id=item.node_id, upload_key=item.upload_key)
        )
    return message
