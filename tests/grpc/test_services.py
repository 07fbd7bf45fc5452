"""Every service, built by its own composition root, on a real port with real PostgreSQL and Redis."""

from __future__ import annotations

from importlib import import_module

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from servicekit import status
from tests.support.servers import SERVICES, running_service

CONTRACTS = {
    "identity": "comfyapi.identity.v1.IdentityService",
    "billing": "comfyapi.billing.v1.BillingService",
    "jobs": "comfyapi.jobs.v1.JobService",
    "inference": "comfyapi.inference.v1.InferenceService",
    "drive-sync": "comfyapi.drive_sync.v1.DriveSyncService",
}
ALL_METHODS = frozenset({"*"})
IMPLEMENTED = {
    "comfyapi.jobs.v1.JobService": ALL_METHODS,
    "comfyapi.billing.v1.BillingService": {
        "ListPlans",
        "GetPlan",
        "GetSubscription",
        "GetUsage",
        "ReserveUsage",
        "BatchReserveUsage",
        "CommitUsage",
        "ReleaseUsage",
    },
    "comfyapi.identity.v1.IdentityService": ALL_METHODS,
    "comfyapi.inference.v1.InferenceService": {
        "Execute",
        "Cancel",
        "ValidateWorkflow",
        "ListBackends",
        "GetBackend",
        "DrainBackend",
        "UndrainBackend",
        "ListNodeTypes",
    },
}


def implemented(service: str, method: str) -> bool:
    methods = IMPLEMENTED.get(service, set())
    return method in methods or methods is ALL_METHODS


async def reflected_services(channel: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    async for reply in call:
        return {service.name for service in reply.list_services_response.service}
    return set()


@pytest.mark.parametrize("name", list(SERVICES))
async def test_service_reports_serving_and_lists_its_contract_by_reflection(
    name: str, database_url: str, clean_redis: str
) -> None:
    async with (
        running_service(name, database_url, clean_redis) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        services = await reflected_services(channel)
    assert {CONTRACTS[name], "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services


@pytest.mark.parametrize("name", list(SERVICES))
async def test_every_rpc_of_the_contract_answers(name: str, database_url: str, clean_redis: str) -> None:
    full_name = CONTRACTS[name]
    import_module(f"comfyapi.{name.replace('-', '_')}.v1.{name.replace('-', '_')}_service_pb2")
    service = descriptor_pool.Default().FindServiceByName(full_name)
    async with (
        running_service(name, database_url, clean_redis) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        for method in service.methods:
            request = message_factory.GetMessageClass(method.input_type)()
            response_type = message_factory.GetMessageClass(method.output_type)
            path = f"/{full_name}/{method.name}"
            factory = channel.unary_stream if method.server_streaming else channel.unary_unary
            rpc = factory(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,
            )
            try:
                reply = rpc(request, timeout=10)
                if method.server_streaming:
                    [_ async for _ in reply]
                else:
                    await reply
            except grpc.aio.AioRpcError as exc:
                if implemented(full_name, method.name):
                    assert exc.code() not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL), path
                    continue
                assert exc.code() == grpc.StatusCode.UNIMPLEMENTED, path
                assert f"{service.name}.{method.name} is not implemented yet" in (exc.details() or "")
                assert status.from_rpc_error(exc).reason == "NOT_IMPLEMENTED_YET"
            else:
                assert implemented(full_name, method.name), f"{path} answered OK unexpectedly"


async def test_an_unknown_preset_is_not_found_with_its_reason(database_url: str, clean_redis: str) -> None:
    from comfyapi.jobs.v1 import jobs_service_pb2 as pb
    from comfyapi.jobs.v1 import jobs_service_pb2_grpc as pb_grpc

    async with (
        running_service("jobs", database_url, clean_redis) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = pb_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetPreset(pb.GetPresetRequest(name="presets/no_such_preset"))
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await stub.GetPreset(pb.GetPresetRequest(name="no_such_preset"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    error = status.from_rpc_error(raised.value)
    assert (error.reason, error.metadata) == ("PRESET_NOT_FOUND", {"preset": "no_such_preset"})
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status.from_rpc_error(malformed.value).violations[0].field == "name"
