"""Core image nodes: EmptyImage, ImageInvert, ImageScale(By), ImageCrop, GetImageSize, ImageToMask."""

from __future__ import annotations

import numpy as np

from inference.runtime.nodes.base import NodeContext, Result, as_float32, node
from inference.runtime.nodes.resample import upscale


@node("EmptyImage")
def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1, color: int = 0) -> Result:
    rgb = [((color >> shift) & 0xFF) / 0xFF for shift in (16, 8, 0)]
    return Result((np.broadcast_to(np.array(rgb, dtype=np.float32), (batch_size, height, width, 3)).copy(),))


@node("ImageInvert")
def image_invert(ctx: NodeContext, image: np.ndarray) -> Result:
    return Result((as_float32(1.0 - image),))


@node("ImageScale")
def image_scale(
    ctx: NodeContext, image: np.ndarray, upscale_method: str, width: int, height: int, crop: str
) -> Result:
    if width == 0 and height == 0:
        return Result((image,))
    if width == 0:
        width = max(1, round(image.shape[2] * height / image.shape[1]))
    elif height == 0:
        height = max(1, round(image.shape[1] * width / image.shape[2]))
    return Result((upscale(image, width, height, upscale_method, crop),))


@node("ImageScaleBy")
def image_scale_by(ctx: NodeContext, image: np.ndarray, upscale_method: str, scale_by: float) -> Result:
    width = round(image.shape[2] * scale_by)
    height = round(image.shape[1] * scale_by)
    return Result((upscale(image, width, height, upscale_method),))


@node("ImageCrop")
def image_crop(ctx: NodeContext, image: np.ndarray, width: int, height: int, x: int, y: int) -> Result:
    x = min(x, image.shape[2] - 1)
    y = min(y, image.shape[1] - 1)
    return Result((np.ascontiguousarray(image[:, y : y + height, x : x + width, :]),))


@node("GetImageSize")
def get_image_size(ctx: NodeContext, image: np.ndarray) -> Result:
    batch, height, width = image.shape[0], image.shape[1], image.shape[2]
    ctx.report_text(f"width: {width}, height: {height}\n batch size: {batch}")
    return Result((width, height, batch))


@node("ImageToMask")
def image_to_mask(ctx: NodeContext, image: np.ndarray, channel: str) -> Result:
    index = ["red", "green", "blue", "alpha"].index(channel)
    return Result((np.ascontiguousarray(image[:, :, :, index]),))
