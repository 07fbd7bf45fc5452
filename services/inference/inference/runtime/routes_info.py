"""Read-only endpoints: /object_info, /system_stats, /features, /models, /embeddings, /extensions."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from inference.runtime import protocol
from inference.runtime.nodes.base import REGISTRY
from inference.runtime.state import Runtime

# Model folders a stock ComfyUI lists (capture 09); the runtime has no models, so each is empty.
MODEL_FOLDERS = [
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "latent_upscale_models",
    "custom_nodes",
    "datasets",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
    "background_removal",
    "frame_interpolation",
    "geometry_estimation",
    "optical_flow",
    "detection",
]


def node_info(rt: Runtime, name: str) -> dict[str, Any]:
    spec = REGISTRY[name].spec
    if name not in ("LoadImage", "LoadImageMask"):
        return spec
    live = copy.deepcopy(spec)
    live["input"]["required"]["image"][0] = rt.dirs.input_images()
    return live


def add_routes(routes: web.RouteTableDef, rt: Runtime) -> None:
    @routes.get("/object_info")
    async def object_info(request: web.Request) -> web.Response:
        return web.json_response({name: node_info(rt, name) for name in REGISTRY})

    @routes.get("/object_info/{node_class}")
    async def object_info_node(request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        return web.json_response({name: node_info(rt, name)} if name in REGISTRY else {})

    @routes.get("/system_stats")
    async def system_stats(request: web.Request) -> web.Response:
        return web.json_response(rt.system_stats())

    @routes.get("/features")
    async def features(request: web.Request) -> web.Response:
        return web.json_response(protocol.SERVER_FEATURES)

    @routes.get("/models")
    async def models(request: web.Request) -> web.Response:
        return web.json_response(MODEL_FOLDERS)

    @routes.get("/models/{folder}")
    async def model_files(request: web.Request) -> web.Response:
        if request.match_info["folder"] not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response([])

    @routes.get("/embeddings")
    async def embeddings(request: web.Request) -> web.Response:
        return web.json_response([])

    @routes.get("/extensions")
    async def extensions(request: web.Request) -> web.Response:
        return web.json_response([])
