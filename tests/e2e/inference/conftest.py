"""The inference service built by its own composition root, with the local runtime as its backend."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

from comfyapi.inference.v1 import execution_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from comfyapi.inference.v1 import inference_service_pb2_grpc as pb_grpc
from inference.bootstrap import build
from inference.settings import InferenceSettings
from servicekit.settings import load
from tests.support.servers import serving

WORKFLOWS = Path("/work/shared/reference/comfy-workflows")


def settings(tmp: Path, **extra: str) -> InferenceSettings:
    env = {
        "GRPC_PORT": "0",
        "STORAGE_DIR": str(tmp / "storage"),
        "RUNTIME_DATA_DIR": str(tmp / "runtime"),
        "PROBE_INTERVAL_SECONDS": "0.3",
        "COMFYUI_SILENCE_SECONDS": "2",
        **{k.upper(): v for k, v in extra.items()},
    }
    return load(InferenceSettings, env)


class Service:
    """A running inference service and a client of it."""

    def __init__(self, stub: pb_grpc.InferenceServiceStub, tmp: Path, port: int) -> None:
        self.stub = stub
        self.storage = tmp / "storage"
        self.runtime_inputs = tmp / "runtime" / "input"  # the local runtime's input folder
        self.port = port

    def put_input(self, key: str, data: bytes) -> str:
        path = self.storage / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return key

    async def run(self, request: pb.ExecuteRequest) -> list[execution_pb2.ExecuteEvent]:
        return [reply.event async for reply in self.stub.Execute(request)]


@pytest.fixture(scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    tmp = tmp_path_factory.mktemp("inference")
    app = await build(settings(tmp))
    async with serving(app) as server, grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Service(pb_grpc.InferenceServiceStub(channel), tmp, server.port)


def png(width: int, height: int, pixel: Any = None) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [pixel(x, y) if pixel else (x % 256, y % 256, 100) for y in range(height) for x in range(width)]
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def slow_workflow(blurs: int = 4, size: int = 1536) -> str:
    """A workflow of several seconds whose node boundaries come every second or two."""
    graph: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 123},
        }
    }
    for index in range(blurs):
        graph[str(index + 2)] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(index + 1), 0], "blur_radius": 31, "sigma": 5.0},
        }
    graph["90"] = {
        "class_type": "ImageScaleBy",
        "inputs": {"image": [str(blurs + 1), 0], "upscale_method": "area", "scale_by": 0.05},
    }
    graph["99"] = {"class_type": "SaveImage", "inputs": {"images": ["90", 0], "filename_prefix": "slow"}}
    return json.dumps(graph)


def kinds(events: list[execution_pb2.ExecuteEvent]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]
