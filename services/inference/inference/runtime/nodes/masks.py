"""Mask and compositing nodes with ComfyUI's math (comfy_extras/nodes_mask.py semantics)."""

from __future__ import annotations

import numpy as np

from inference.runtime.nodes.base import NodeContext, Result, as_float32, node
from inference.runtime.nodes.filters import alpha_fix
from inference.runtime.nodes.resample import upscale


def as_masks(mask: np.ndarray) -> np.ndarray:
    return mask.reshape((-1, mask.shape[-2], mask.shape[-1]))


def repeat_to_batch(array: np.ndarray, size: int) -> np.ndarray:
    if array.shape[0] > size:
        return array[:size]
    if array.shape[0] < size:
        reps = -(-size // array.shape[0])
        return np.concatenate([array] * reps)[:size]
    return array


def composite(
    destination: np.ndarray, source: np.ndarray, x: int, y: int, mask: np.ndarray | None, resize_source: bool
) -> np.ndarray:
    """Paste `source` [B,H,W,C] over `destination` at (x, y), blended by `mask`, clipped to the canvas."""
    out = destination.copy()
    height, width = out.shape[1], out.shape[2]
    if resize_source:
        source = upscale(source, width, height, "bilinear")
    source = repeat_to_batch(source, out.shape[0])
    x = max(-source.shape[2], min(x, width))
    y = max(-source.shape[1], min(y, height))
    left, top = x, y
    if mask is None:
        weights = np.ones(source.shape[:3], dtype=np.float32)
    else:
        weights = upscale(as_masks(mask), source.shape[2], source.shape[1], "bilinear")
        weights = repeat_to_batch(weights, source.shape[0])
    visible_w = width - left + min(0, x)
    visible_h = height - top + min(0, y)
    weights = weights[:, :visible_h, :visible_w, None]
    right, bottom = left + source.shape[2], top + source.shape[1]
    region = out[:, max(top, 0) : bottom, max(left, 0) : right]
    src = source[:, :visible_h, :visible_w]
    src = src[:, : region.shape[1], : region.shape[2]]
    weights = weights[:, : region.shape[1], : region.shape[2]]
    out[:, max(top, 0) : bottom, max(left, 0) : right] = weights * src + (1 - weights) * region
    return out


@node("ImageCompositeMasked")
def image_composite_masked(
    ctx: NodeContext,
    destination: np.ndarray,
    source: np.ndarray,
    x: int,
    y: int,
    resize_source: bool,
    mask: np.ndarray | None = None,
) -> Result:
    source = alpha_fix(destination, source)
    return Result((as_float32(composite(destination, source, x, y, mask, resize_source)),))


@node("MaskToImage")
def mask_to_image(ctx: NodeContext, mask: np.ndarray) -> Result:
    return Result((np.repeat(as_masks(mask)[..., None], 3, axis=-1).astype(np.float32),))


@node("ImageColorToMask")
def image_color_to_mask(ctx: NodeContext, image: np.ndarray, color: int) -> Result:
    values = np.round(np.clip(image, 0, 1) * 255.0).astype(np.int64)
    packed = (values[..., 0] << 16) + (values[..., 1] << 8) + values[..., 2]
    return Result(((packed == color).astype(np.float32),))


@node("SolidMask")
def solid_mask(ctx: NodeContext, value: float, width: int, height: int) -> Result:
    return Result((np.full((1, height, width), value, dtype=np.float32),))


@node("InvertMask")
def invert_mask(ctx: NodeContext, mask: np.ndarray) -> Result:
    return Result((as_float32(1.0 - mask),))


@node("CropMask")
def crop_mask(ctx: NodeContext, mask: np.ndarray, x: int, y: int, width: int, height: int) -> Result:
    return Result((np.ascontiguousarray(as_masks(mask)[:, y : y + height, x : x + width]),))


_MASK_OPS = {
    "multiply": lambda d, s: d * s,
    "add": lambda d, s: d + s,
    "subtract": lambda d, s: d - s,
    "and": lambda d, s: (np.round(d).astype(bool) & np.round(s).astype(bool)).astype(np.float32),
    "or": lambda d, s: (np.round(d).astype(bool) | np.round(s).astype(bool)).astype(np.float32),
    "xor": lambda d, s: (np.round(d).astype(bool) ^ np.round(s).astype(bool)).astype(np.float32),
}


@node("MaskComposite")
def mask_composite(
    ctx: NodeContext, destination: np.ndarray, source: np.ndarray, x: int, y: int, operation: str
) -> Result:
    out = as_masks(destination).astype(np.float32).copy()
    source = as_masks(source)
    right = min(x + source.shape[-1], out.shape[-1])
    bottom = min(y + source.shape[-2], out.shape[-2])
    part = source[:, : bottom - y, : right - x]
    out[:, y:bottom, x:right] = _MASK_OPS[operation](out[:, y:bottom, x:right], part)
    return Result((np.clip(out, 0.0, 1.0),))


@node("FeatherMask")
def feather_mask(ctx: NodeContext, mask: np.ndarray, left: int, top: int, right: int, bottom: int) -> Result:
    out = as_masks(mask).astype(np.float32).copy()
    width, height = out.shape[-1], out.shape[-2]
    left, right, top, bottom = min(left, width), min(right, width), min(top, height), min(bottom, height)
    for i in range(left):
        out[:, :, i] *= (i + 1.0) / left
    for i in range(right):
        out[:, :, -(i + 1)] *= (i + 1) / right
    for i in range(top):
        out[:, i, :] *= (i + 1) / top
    for i in range(bottom):
        out[:, -(i + 1), :] *= (i + 1) / bottom
    return Result((out,))


def _grey_step(mask: np.ndarray, grow: bool, tapered: bool) -> np.ndarray:
    """One 3x3 grey dilation/erosion (edge pixels repeat at the border, like scipy's reflect mode)."""
    padded = np.pad(mask, 1, mode="symmetric")
    h, w = mask.shape
    offsets = [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)]
    if not tapered:
        offsets += [(0, 0), (0, 2), (2, 0), (2, 2)]
    stack = np.stack([padded[dy : dy + h, dx : dx + w] for dy, dx in offsets])
    return stack.max(axis=0) if grow else stack.min(axis=0)


@node("GrowMask")
def grow_mask(ctx: NodeContext, mask: np.ndarray, expand: int, tapered_corners: bool) -> Result:
    out = []
    for m in as_masks(mask):
        for _ in range(abs(expand)):
            m = _grey_step(m, expand > 0, tapered_corners)
        out.append(m)
    return Result((np.stack(out).astype(np.float32),))


@node("ThresholdMask")
def threshold_mask(ctx: NodeContext, mask: np.ndarray, value: float) -> Result:
    return Result(((mask > value).astype(np.float32),))


@node("JoinImageWithAlpha")
def join_image_with_alpha(ctx: NodeContext, image: np.ndarray, alpha: np.ndarray) -> Result:
    batch = max(len(image), len(alpha))
    alpha = 1.0 - upscale(as_masks(alpha), image.shape[2], image.shape[1], "bilinear")
    alpha, image = repeat_to_batch(alpha, batch), repeat_to_batch(image, batch)
    return Result((np.concatenate([image[..., :3], alpha[..., None]], axis=-1).astype(np.float32),))


@node("SplitImageWithAlpha")
def split_image_with_alpha(ctx: NodeContext, image: np.ndarray) -> Result:
    rgb = np.ascontiguousarray(image[..., :3])
    alpha = 1.0 - image[..., 3] if image.shape[-1] > 3 else np.zeros(image.shape[:3], dtype=np.float32)
    return Result((rgb, as_float32(alpha)))
