"""Loading and saving: LoadImage, LoadImageMask, SaveImage, PreviewImage, SaveImageWebsocket, MaskPreview."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from typing import Any

import numpy as np
from PIL import Image, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from inference.runtime.files import save_image_path
from inference.runtime.nodes.base import NodeContext, Result, node

_TEMP_LETTERS = "abcdefghijklmnopqrstupvxyz"


def _file_digest(ctx_dirs: Any, image: str, **_: Any) -> str:
    with open(ctx_dirs.annotated_path(image), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _image_exists(ctx_dirs: Any, image: str, **_: Any) -> bool | str:
    if not ctx_dirs.annotated_exists(image):
        return f"Invalid image file: {image}"
    return True


def load_frames(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Frames of an image file as IMAGE [B,H,W,3] and MASK [B,H,W] (mask = 1 - alpha)."""
    with Image.open(path) as img:
        images, masks = [], []
        size = None
        for frame in ImageSequence.Iterator(img):
            frame = ImageOps.exif_transpose(frame)
            rgb = frame.convert("RGB")
            size = size or rgb.size
            if rgb.size != size:
                continue
            images.append(np.asarray(rgb, dtype=np.float32) / 255.0)
            if "A" in frame.getbands():
                masks.append(1.0 - np.asarray(frame.getchannel("A"), dtype=np.float32) / 255.0)
            else:
                masks.append(np.zeros((64, 64), dtype=np.float32))
    return np.stack(images), np.stack(masks)


@node("LoadImage", validate=_image_exists, is_changed=_file_digest)
def load_image(ctx: NodeContext, image: str) -> Result:
    return Result(load_frames(ctx.dirs.annotated_path(image)))


@node("LoadImageMask", validate=_image_exists, is_changed=_file_digest)
def load_image_mask(ctx: NodeContext, image: str, channel: str) -> Result:
    pixels, mask = load_frames(ctx.dirs.annotated_path(image))
    index = {"r": 0, "g": 1, "b": 2}.get(channel[0].lower())
    if index is None:
        return Result((mask,))
    return Result((np.ascontiguousarray(pixels[..., index]),))


def save_batch(
    ctx: NodeContext, images: np.ndarray, prefix: str, folder_type: str, compress: int
) -> list[dict[str, str]]:
    base_dir = ctx.dirs.output if folder_type == "output" else ctx.dirs.temp
    folder, filename, counter, subfolder = save_image_path(prefix, base_dir, images.shape[2], images.shape[1])
    results = []
    for batch_number, image in enumerate(images):
        pixels = np.clip(255.0 * image, 0, 255).astype(np.uint8)
        if pixels.ndim == 3 and pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        Image.fromarray(pixels).save(
            os.path.join(folder, name), pnginfo=_png_info(ctx), compress_level=compress
        )
        results.append({"filename": name, "subfolder": subfolder, "type": folder_type})
        counter += 1
    return results


def _png_info(ctx: NodeContext) -> PngInfo:
    info = PngInfo()
    info.add_text("prompt", json.dumps(ctx.prompt))
    if isinstance(ctx.extra_pnginfo, dict):
        for key, value in ctx.extra_pnginfo.items():
            info.add_text(key, json.dumps(value))
    return info


@node("SaveImage")
def save_image(ctx: NodeContext, images: np.ndarray, filename_prefix: str = "ComfyUI") -> Result:
    saved = save_batch(ctx, images, filename_prefix, "output", compress=4)
    return Result((images,), ui={"images": saved})


def _temp_prefix(ctx: NodeContext) -> str:
    # One random suffix per node, kept while the node stays in consecutive prompts (as ComfyUI's node object).
    if "temp_suffix" not in ctx.state:
        ctx.state["temp_suffix"] = "_temp_" + "".join(random.choice(_TEMP_LETTERS) for _ in range(5))
    return "ComfyUI" + str(ctx.state["temp_suffix"])


@node("PreviewImage")
def preview_image(ctx: NodeContext, images: np.ndarray) -> Result:
    saved = save_batch(ctx, images, _temp_prefix(ctx), "temp", compress=1)
    return Result((images,), ui={"images": saved})


@node("MaskPreview")
def mask_preview(ctx: NodeContext, mask: np.ndarray) -> Result:
    flat = mask.reshape((-1, mask.shape[-2], mask.shape[-1]))
    rgb = np.repeat(flat[..., None], 3, axis=-1)
    saved = save_batch(ctx, rgb, _temp_prefix(ctx), "temp", compress=1)
    return Result((mask,), ui={"images": saved})


def _never_cached(*_: Any, **__: Any) -> float:
    import time

    return time.time()


@node("SaveImageWebsocket", is_changed=_never_cached)
def save_image_websocket(ctx: NodeContext, images: np.ndarray) -> Result:
    total = images.shape[0]
    for step, image in enumerate(images):
        pixels = np.clip(255.0 * image, 0, 255).astype(np.uint8)
        ctx.report_progress(step, total, ("PNG", Image.fromarray(pixels)))
    return Result(())


def encode_preview(kind: str, image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, quality=95, compress_level=1)
    return buffer.getvalue()
