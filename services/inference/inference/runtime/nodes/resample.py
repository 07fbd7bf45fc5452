"""Resizing with the semantics of ComfyUI's `common_upscale`: torch `interpolate` (align_corners=False, no
antialiasing) for nearest-exact, bilinear, bicubic and area, Pillow's Lanczos for lanczos, optional centre
crop to the target aspect first. Arrays are [..., H, W, C] or [..., H, W] float32."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
_CUBIC_A = -0.75


def upscale(images: np.ndarray, width: int, height: int, method: str, crop: str = "disabled") -> np.ndarray:
    """Resize a batch of images [B,H,W,C] or masks [B,H,W] to width x height."""
    if crop == "center":
        images = _center_crop(images, width, height)
    if method == "lanczos":
        return _lanczos(images, width, height)
    spatial_h, spatial_w = 1, 2
    out = _resize_axis(images, height, spatial_h, method)
    return np.ascontiguousarray(_resize_axis(out, width, spatial_w, method), dtype=np.float32)


def _center_crop(images: np.ndarray, width: int, height: int) -> np.ndarray:
    old_h, old_w = images.shape[1], images.shape[2]
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return images[:, y : old_h - y, x : old_w - x]


def _resize_axis(array: np.ndarray, size: int, axis: int, method: str) -> np.ndarray:
    length = array.shape[axis]
    if length == size and method != "area":
        return array
    if method == "area":
        return _area(array, size, axis)
    index, weight = _taps(length, size, method)
    shape = [1] * array.ndim
    shape[axis] = size
    out: np.ndarray | None = None
    for k in range(weight.shape[1]):
        part = np.take(array, index[:, k], axis=axis).astype(np.float32, copy=False)
        part = part * weight[:, k].astype(np.float32).reshape(shape)
        out = part if out is None else np.add(out, part, out=out)
    assert out is not None
    return out


def _taps(length: int, size: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights per output position; `take` puts the taps right after `axis`."""
    scale = length / size
    dst = np.arange(size, dtype=np.float64)
    if method == "nearest-exact":
        src = np.minimum(np.floor((dst + 0.5) * scale), length - 1).astype(np.int64)
        return src[:, None], np.ones((size, 1))
    src = (dst + 0.5) * scale - 0.5
    if method == "bilinear":
        src = np.maximum(src, 0.0)
        i0 = np.floor(src).astype(np.int64)
        i0 = np.minimum(i0, length - 1)
        i1 = np.minimum(i0 + 1, length - 1)
        t = src - i0
        return np.stack([i0, i1], axis=1), np.stack([1 - t, t], axis=1)
    if method == "bicubic":
        base = np.floor(src).astype(np.int64)
        t = src - base
        index = np.clip(np.stack([base - 1, base, base + 1, base + 2], axis=1), 0, length - 1)
        return index, _cubic_weights(t)
    raise ValueError(f"Unknown upscale method: {method}")


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    a = _CUBIC_A

    def near(x: np.ndarray) -> np.ndarray:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)


def _area(array: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Adaptive average pooling: output i averages source [floor(i*L/S), ceil((i+1)*L/S))."""
    length = array.shape[axis]
    starts = np.array([math.floor(i * length / size) for i in range(size)])
    ends = np.array([math.ceil((i + 1) * length / size) for i in range(size)])
    moved = np.moveaxis(array, axis, 0).astype(np.float64)
    cumulative = np.concatenate([np.zeros((1, *moved.shape[1:])), np.cumsum(moved, axis=0)], axis=0)
    counts = (ends - starts).reshape((-1,) + (1,) * (moved.ndim - 1))
    pooled = (cumulative[ends] - cumulative[starts]) / counts
    return np.moveaxis(pooled.astype(np.float32), 0, axis)


def _lanczos(images: np.ndarray, width: int, height: int) -> np.ndarray:
    # ComfyUI goes through 8-bit Pillow images for lanczos; so do we.
    out = []
    for image in images:
        pixels = np.clip(255.0 * image, 0, 255).astype(np.uint8)
        resized = Image.fromarray(pixels).resize((width, height), resample=Image.Resampling.LANCZOS)
        out.append(np.asarray(resized).astype(np.float32) / 255.0)
    return np.stack(out).astype(np.float32)
