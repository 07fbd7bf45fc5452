"""The aiohttp application: every route twice, bare and under /api, as ComfyUI registers them."""

from __future__ import annotations

from aiohttp import web

from inference.runtime import (
    nodes,  # noqa: F401 - registers the node implementations
    routes_files,
    routes_info,
    routes_jobs,
    routes_prompt,
    routes_ws,
)
from inference.runtime.state import Runtime

RUNTIME_KEY = web.AppKey("runtime", Runtime)


def build_app(rt: Runtime) -> web.Application:
    routes = web.RouteTableDef()
    for module in (routes_ws, routes_prompt, routes_files, routes_info, routes_jobs):
        module.add_routes(routes, rt)
    app = web.Application(client_max_size=104857600)
    app[RUNTIME_KEY] = rt
    prefixed = [
        web.route(r.method, "/api" + r.path, r.handler) for r in routes if isinstance(r, web.RouteDef)
    ]
    app.add_routes(prefixed)
    app.add_routes(routes)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await rt.start()
        yield
        await rt.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
