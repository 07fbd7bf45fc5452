"""ImageCropToMask: crop each image to its mask's bounding box (grown to the output aspect, padded by
pad_factor), composite over a background colour and resize with Lanczos, as ComfyUI does."""

from __future__ import annotations

import math

import numpy as np

from inference.runtime.nodes.base import NodeContext, Result, node
from inference.runtime.nodes.color import _window_extreme
from inference.runtime.nodes.resample import upscale


def _grow(mask: np.ndarray, offset: int) -> np.ndarray:
    if offset == 0:
        return mask
    size = 2 * abs(offset) + 1
    m = mask[None] if offset > 0 else 1.0 - mask[None]
    grown = _window_extreme(_window_extreme(m, size, 1, True), size, 2, True)[0]
    return grown if offset > 0 else 1.0 - grown


def _bbox(mask: np.ndarray, pad_factor: float, aspect: float) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero((np.clip(mask, 0, 1) * 255.0).astype(np.uint8) > 204)
    if len(ys) == 0:
        return None
    cy, cx = (ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    if bw / max(bh, 1) >= aspect:
        crop_w, crop_h = int(bw * pad_factor), int(bw / aspect * pad_factor)
    else:
        crop_h, crop_w = int(bh * pad_factor), int(bh * aspect * pad_factor)
    half_w, half_h = math.ceil(crop_w / 2), math.ceil(crop_h / 2)
    x1, y1 = int(cx - half_w), int(cy - half_h)
    return x1, y1, x1 + 2 * half_w, y1 + 2 * half_h


def _crop_one(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    pad_factor: float,
    offset: int,
    background: tuple[float, float, float],
    aspect: float,
) -> np.ndarray:
    image, mask = np.clip(image, 0, 1), np.clip(mask, 0, 1)
    h, w = mask.shape
    border = np.concatenate([mask[0, :], mask[-1, :], mask[:, 0], mask[:, -1]])
    if border.mean() > 0.5 and mask[h // 4 : h - h // 4, w // 4 : w - w // 4].mean() < 0.5:
        mask = 1.0 - mask
    mask = _grow(mask, offset)
    mask = np.where(mask < 0.05, 0.0, mask)
    if max(h, w) > size:
        scale = size / max(h, w)
        nw, nh = int(w * scale), int(h * scale)
        image = upscale(image[None], nw, nh, "lanczos")[0]
        mask = upscale(mask[None], nw, nh, "lanczos")[0]
        h, w = nh, nw
    box = _bbox(mask, pad_factor, aspect)
    if box is None and _bbox(1.0 - mask, pad_factor, aspect) is not None:
        mask = 1.0 - mask
        box = _bbox(mask, pad_factor, aspect)
    x1, y1, x2, y2 = box if box is not None else (0, 0, w, h)
    pad = ((max(0, -y1), max(0, y2 - h)), (max(0, -x1), max(0, x2 - w)))
    image = np.pad(image, (*pad, (0, 0)))
    mask = np.pad(mask, pad)
    x1, x2, y1, y2 = x1 + pad[1][0], x2 + pad[1][0], y1 + pad[0][0], y2 + pad[0][0]
    crop, weights = image[y1:y2, x1:x2], mask[y1:y2, x1:x2, None]
    return np.clip(crop * weights + np.array(background) * (1.0 - weights), 0, 1).astype(np.float32)


@node("ImageCropToMask")
def image_crop_to_mask(
    ctx: NodeContext,
    images: np.ndarray,
    masks: np.ndarray,
    width: int,
    height: int,
    pad_factor: float,
    grow_mask: int,
    background: str,
) -> Result:
    code = background.lstrip("#")
    rgb = tuple(int(code[i : i + 2], 16) / 255.0 for i in (0, 2, 4)) if len(code) == 6 else (0.0, 0.0, 0.0)
    images = images[..., :3]
    batch = images.shape[0]
    if masks.shape[0] == 1 and batch > 1:
        masks = np.repeat(masks, batch, axis=0)
    elif masks.shape[0] != batch:
        raise ValueError(f"Mask batch {masks.shape[0]} does not match image batch {batch}")
    if masks.shape[-2:] != images.shape[1:3]:
        masks = upscale(masks, images.shape[2], images.shape[1], "bilinear")
    out = []
    for b in range(batch):
        ctx.check_interrupt()
        crop = _crop_one(images[b], masks[b], max(width, height), pad_factor, grow_mask, rgb, width / height)
        out.append(upscale(crop[None], width, height, "lanczos")[0])
    return Result((np.stack(out),))
