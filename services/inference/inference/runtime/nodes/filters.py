"""Filters with ComfyUI's math: ImageSharpen, ImageBlur (gaussian over [-1, 1] with reflect padding),
ImageBlend (all six modes)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from inference.runtime.nodes.base import NodeContext, Result, as_float32, node
from inference.runtime.nodes.resample import upscale


def gaussian_1d(kernel_size: int, sigma: float) -> np.ndarray:
    """ComfyUI's 2-D kernel exp(-(x^2+y^2)/(2 sigma^2)) on a [-1, 1] grid is separable: this is one factor."""
    x = np.linspace(-1.0, 1.0, kernel_size, dtype=np.float32)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma)).astype(np.float64)
    return (g / g.sum()).astype(np.float32)


def gaussian_blur(images: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    """Blur [B,H,W,C] with reflect padding; output has the input size."""
    kernel = gaussian_1d(radius * 2 + 1, sigma)
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="reflect")
    return _convolve_axis(_convolve_axis(padded, kernel, axis=1), kernel, axis=2)


def _convolve_axis(array: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    size = array.shape[axis] - len(kernel) + 1
    shape = (*array.shape[:axis], size, *array.shape[axis + 1 :])
    out = np.zeros(shape, dtype=np.float32)
    scratch = np.empty(shape, dtype=np.float32)
    for k, weight in enumerate(kernel):
        window = [slice(None)] * array.ndim
        window[axis] = slice(k, k + size)
        np.multiply(array[tuple(window)], weight, out=scratch)
        out += scratch
    return out


@node("ImageBlur")
def image_blur(ctx: NodeContext, image: np.ndarray, blur_radius: int, sigma: float) -> Result:
    if blur_radius == 0:
        return Result((image,))
    out = [gaussian_blur(image[i : i + 1], blur_radius, sigma) for i in _batch(ctx, image)]
    return Result((np.concatenate(out),))


@node("ImageSharpen")
def image_sharpen(
    ctx: NodeContext, image: np.ndarray, sharpen_radius: int, sigma: float, alpha: float
) -> Result:
    if sharpen_radius == 0:
        return Result((image,))
    # The kernel -10a*G with its centre raised so it sums to 1 equals (1+10a)*identity - 10a*G.
    strength = alpha * 10.0
    out = []
    for i in _batch(ctx, image):
        blurred = gaussian_blur(image[i : i + 1], sharpen_radius, sigma)
        out.append(np.clip((1.0 + strength) * image[i : i + 1] - strength * blurred, 0.0, 1.0))
    return Result((as_float32(np.concatenate(out)),))


def _batch(ctx: NodeContext, image: np.ndarray) -> Iterator[int]:
    # Checking between batch items lets an interrupt land inside long multi-image filters.
    for i in range(image.shape[0]):
        ctx.check_interrupt()
        yield i


def alpha_fix(destination: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Make `source` have the channel count of `destination` (drop alpha, or add an opaque one)."""
    if destination.shape[-1] < source.shape[-1]:
        return source[..., : destination.shape[-1]]
    if destination.shape[-1] > source.shape[-1]:
        return np.concatenate([source, np.ones((*source.shape[:-1], 1), dtype=source.dtype)], axis=-1)
    return source


def apply_blend_mode(img1: np.ndarray, img2: np.ndarray, mode: str) -> np.ndarray:
    if mode == "normal":
        return img2
    if mode == "multiply":
        return img1 * img2
    if mode == "screen":
        return 1 - (1 - img1) * (1 - img2)
    if mode == "overlay":
        return np.where(img1 <= 0.5, 2 * img1 * img2, 1 - 2 * (1 - img1) * (1 - img2))
    if mode == "soft_light":
        g = np.where(img1 <= 0.25, ((16 * img1 - 12) * img1 + 4) * img1, np.sqrt(np.maximum(img1, 0)))
        return np.where(
            img2 <= 0.5, img1 - (1 - 2 * img2) * img1 * (1 - img1), img1 + (2 * img2 - 1) * (g - img1)
        )
    if mode == "difference":
        return img1 - img2
    raise ValueError(f"Unsupported blend mode: {mode}")


@node("ImageBlend")
def image_blend(
    ctx: NodeContext, image1: np.ndarray, image2: np.ndarray, blend_factor: float, blend_mode: str
) -> Result:
    image2 = alpha_fix(image1, image2)
    if image1.shape != image2.shape:
        image2 = upscale(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
    blended = apply_blend_mode(image1, image2, blend_mode)
    out = image1 * (1 - blend_factor) + blended * blend_factor
    return Result((as_float32(np.clip(out, 0, 1)),))
