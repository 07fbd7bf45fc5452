"""POST /upload/image and GET /view with ComfyUI's naming, de-duplication and path rules (capture 08)."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os

from aiohttp import web
from multidict import MultiDictProxy, MultiMapping
from PIL import Image

from inference.runtime.state import Runtime


def add_routes(routes: web.RouteTableDef, rt: Runtime) -> None:
    @routes.post("/upload/image")
    async def upload_image(request: web.Request) -> web.Response:
        return _upload(rt, await request.post())

    @routes.get("/view")
    async def view(request: web.Request) -> web.StreamResponse:
        return _view(rt, request.query)


def _upload(rt: Runtime, post: MultiDictProxy[str | bytes | web.FileField]) -> web.Response:
    image = post.get("image")
    if not isinstance(image, web.FileField) or not image.filename:
        return web.Response(status=400)
    kind = str(post.get("type") or "input")
    base = rt.dirs.by_type(kind) or rt.dirs.input
    subfolder = str(post.get("subfolder", ""))
    folder = os.path.join(base, os.path.normpath(subfolder))
    body = image.file.read()
    name = image.filename
    if os.path.commonpath((base, os.path.abspath(os.path.join(folder, name)))) != base:
        return web.Response(status=400)
    os.makedirs(folder, exist_ok=True)
    overwrite = post.get("overwrite") in ("true", "1")
    name, duplicate = (name, False) if overwrite else _free_name(folder, name, body)
    if not duplicate:
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(body)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


def _view(rt: Runtime, query: MultiMapping[str]) -> web.StreamResponse:
    if "filename" not in query:
        return web.Response(status=404)
    filename = query["filename"]
    if not filename or filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    folder = rt.dirs.by_type(query.get("type", "output"))
    if folder is None:
        return web.Response(status=400)
    if "subfolder" in query:
        full = os.path.join(folder, query["subfolder"])
        if os.path.commonpath((os.path.abspath(full), folder)) != folder:
            return web.Response(status=403)
        folder = full
    filename = os.path.basename(filename)
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
        return web.Response(status=404)
    return _serve(path, filename, query.get("preview"), query.get("channel"))


def _free_name(folder: str, name: str, body: bytes) -> tuple[str, bool]:
    """ComfyUI keeps identical bytes under the same name and renames a clash to `name (1).ext`."""
    stem, ext = os.path.splitext(name)
    candidate, counter = name, 1
    while os.path.exists(os.path.join(folder, candidate)):
        with open(os.path.join(folder, candidate), "rb") as handle:
            if hashlib.sha256(handle.read()).digest() == hashlib.sha256(body).digest():
                return candidate, True
        candidate = f"{stem} ({counter}){ext}"
        counter += 1
    return candidate, False


def _serve(path: str, filename: str, preview: str | None, channel: str | None) -> web.StreamResponse:
    disposition = {"Content-Disposition": f'filename="{filename}"'}
    if preview is not None:
        parts = preview.split(";")
        fmt = parts[0] if parts[0] in ("webp", "jpeg") and "a" not in (channel or "") else "webp"
        quality = int(parts[-1]) if parts[-1].isdigit() else 90
        with Image.open(path) as img:
            if fmt == "jpeg" or channel == "rgb":
                img = img.convert("RGB")
            return web.Response(
                body=_encode(img, fmt, quality=quality), content_type=f"image/{fmt}", headers=disposition
            )
    if channel == "rgb":
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            return web.Response(body=_encode(rgb, "png"), content_type="image/png", headers=disposition)
    if channel == "a":
        with Image.open(path) as img:
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
            return web.Response(body=_encode(out, "png"), content_type="image/png", headers=disposition)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return web.FileResponse(
        path, headers={**disposition, "Content-Type": content_type, "X-Content-Type-Options": "nosniff"}
    )


def _encode(img: Image.Image, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()
