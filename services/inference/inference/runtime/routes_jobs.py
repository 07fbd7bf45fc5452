"""The /api/jobs view of queue and history (capture 12)."""

from __future__ import annotations

from aiohttp import web

from inference.runtime.state import Runtime


def add_routes(routes: web.RouteTableDef, rt: Runtime) -> None:
    return None
