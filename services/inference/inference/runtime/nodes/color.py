"""Colour nodes: ColorTransfer (Reinhard/MKL in CIE Lab, histogram matching), ImageQuantize, Morphology."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from inference.runtime.nodes.base import NodeContext, Result, as_float32, node

_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = 1e-6


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] sRGB in 0..1 to CIE Lab (D65), the conversion kornia performs for ComfyUI."""
    linear = np.where(rgb > 0.04045, np.power((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > 0.008856, np.cbrt(np.maximum(xyz, 0.008856)), 7.787 * xyz + 4.0 / 29.0)
    return np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], axis=-1
    )


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 0.2068966, f**3, (f - 4.0 / 29.0) / 7.787) * _WHITE
    linear = xyz @ _XYZ_TO_RGB.T
    srgb = np.where(
        linear > 0.0031308, 1.055 * np.power(np.maximum(linear, 0.0031308), 1 / 2.4) - 0.055, 12.92 * linear
    )
    return np.clip(srgb, 0.0, 1.0)


def _stats(flat: np.ndarray, reinhard: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (Reinhard) or covariance (MKL) of [N, 3] samples."""
    mean = flat.mean(axis=0)
    centered = flat - mean
    if reinhard:
        return mean, np.maximum(np.sqrt((centered * centered).mean(axis=0)), _EPS)
    return mean, centered.T @ centered / len(flat)


def _pooled(frames: list[np.ndarray], reinhard: bool) -> tuple[np.ndarray, np.ndarray]:
    mean = np.mean([f.mean(axis=0) for f in frames], axis=0)
    if reinhard:
        var = np.mean([((f - mean) ** 2).mean(axis=0) for f in frames], axis=0)
        return mean, np.maximum(np.sqrt(var), _EPS)
    return mean, np.mean([(f - mean).T @ (f - mean) / len(f) for f in frames], axis=0)


def _mkl(cov_s: np.ndarray, cov_r: np.ndarray) -> np.ndarray:
    val_s, vec_s = np.linalg.eigh(cov_s)
    sqrt_s = np.maximum(np.sqrt(np.maximum(val_s, 0)), _EPS)
    scaled = vec_s * sqrt_s[None, :]
    val_m, vec_m = np.linalg.eigh(scaled.T @ cov_r @ scaled)
    half = (vec_m * np.sqrt(np.maximum(val_m, 0))[None, :]) @ vec_m.T
    inverse = vec_s * (1.0 / sqrt_s)[None, :]
    return inverse @ half @ inverse.T


def _affine(
    src: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray], reinhard: bool
) -> Callable[[np.ndarray], np.ndarray]:
    if reinhard:
        scale = ref[1] / src[1]
        return lambda flat: (flat - src[0]) * scale + ref[0]
    matrix = _mkl(src[1], ref[1])
    return lambda flat: (flat - src[0]) @ matrix.T + ref[0]


def _histogram_lut(src_cdf: np.ndarray, ref_cdf: np.ndarray) -> np.ndarray:
    lut = np.stack([np.searchsorted(ref_cdf[c], src_cdf[c], side="left") for c in range(src_cdf.shape[0])])
    return np.minimum(lut, 255).astype(np.float32) / 255.0


def _cdf(frames: np.ndarray) -> np.ndarray:
    channels = frames.shape[-1]
    bins = np.clip((frames.reshape(-1, channels) * 255).astype(np.int64), 0, 255)
    hist = np.stack([np.bincount(bins[:, c], minlength=256) for c in range(channels)]).astype(np.float64)
    cdf = np.cumsum(hist, axis=1)
    return (cdf / cdf[:, -1:]).astype(np.float32)


@node("ColorTransfer")
def color_transfer(
    ctx: NodeContext,
    image_target: np.ndarray,
    image_ref: np.ndarray,
    method: str,
    source_stats: str,
    strength: float = 1.0,
    **nested: int,
) -> Result:
    if strength == 0 or image_ref is None:
        return Result((image_target,))
    target_index = min(int(nested.get("source_stats.target_index", 0)), image_target.shape[0] - 1)
    out = np.empty_like(image_target, dtype=np.float32)
    if method == "histogram":
        for i, frame in enumerate(image_target):
            ctx.check_interrupt()
            if source_stats == "per_frame":
                lut = _histogram_lut(_cdf(frame), _cdf(image_ref[min(i, len(image_ref) - 1)]))
            else:
                source = (
                    image_target[target_index : target_index + 1]
                    if source_stats == "target_frame"
                    else image_target
                )
                lut = _histogram_lut(_cdf(source), _cdf(image_ref))
            bins = np.clip((frame * 255).astype(np.int64), 0, 255)
            matched = np.stack([lut[c][bins[..., c]] for c in range(frame.shape[-1])], axis=-1)
            out[i] = np.clip(frame + (matched - frame) * strength, 0, 1)
            ctx.report_progress(i + 1, len(image_target), None)
        return Result((out,))
    reinhard = method == "reinhard_lab"
    labs = [rgb_to_lab(f[..., :3].astype(np.float64)).reshape(-1, 3) for f in image_target]
    refs = [rgb_to_lab(f[..., :3].astype(np.float64)).reshape(-1, 3) for f in image_ref]
    shared = None
    if source_stats in ("uniform", "target_frame"):
        src = (
            _stats(labs[target_index], reinhard)
            if source_stats == "target_frame"
            else _pooled(labs, reinhard)
        )
        shared = _affine(src, _pooled(refs, reinhard), reinhard)
    for i, lab in enumerate(labs):
        ctx.check_interrupt()
        if shared is not None:
            corrected = shared(lab)
        else:
            ref = _pooled(refs, reinhard) if len(refs) == 1 else _stats(refs[min(i, len(refs) - 1)], reinhard)
            corrected = _affine(_stats(lab, reinhard), ref, reinhard)(lab)
        mixed = lab + (corrected - lab) * strength
        out[i] = lab_to_rgb(mixed).reshape((*image_target.shape[1:3], 3))
        ctx.report_progress(i + 1, len(image_target), None)
    return Result((out,))


@node("ImageQuantize")
def image_quantize(ctx: NodeContext, image: np.ndarray, colors: int, dither: str) -> Result:
    out = np.zeros_like(image, dtype=np.float32)
    for b, frame in enumerate(image):
        img = Image.fromarray((frame * 255).astype(np.uint8), mode="RGB")
        palette = img.quantize(colors=colors)
        mode = Image.Dither.FLOYDSTEINBERG if dither == "floyd-steinberg" else Image.Dither.NONE
        if dither.startswith("bayer"):
            img = _bayer(img, palette, int(dither.split("-")[-1]))
            mode = Image.Dither.NONE
        out[b] = np.asarray(img.quantize(palette=palette, dither=mode).convert("RGB"), dtype=np.float32) / 255
    return Result((out,))


def _bayer(img: Image.Image, palette: Image.Image, order: int) -> Image.Image:
    def matrix(n: int) -> np.ndarray:
        if n == 0:
            return np.zeros((1, 1), dtype=np.float32)
        q = 4**n
        m = q * matrix(n - 1)
        return np.block([[m - 1.5, m + 0.5], [m + 1.5, m - 0.5]]) / q

    spread = 2 * 256 / (len(palette.getpalette() or []) // 3)
    bayer = spread * matrix(int(np.log2(order))) + 0.5
    pixels = np.asarray(img).astype(np.float32)
    tiled = np.tile(bayer, (-(-pixels.shape[0] // bayer.shape[0]), -(-pixels.shape[1] // bayer.shape[1])))
    pixels = np.clip(pixels + tiled[: pixels.shape[0], : pixels.shape[1], None], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _window_extreme(array: np.ndarray, size: int, axis: int, grow: bool) -> np.ndarray:
    """Flat max (dilate) or min (erode) over a window along `axis`; out-of-image pixels are ignored."""
    before = size // 2 if grow else size - 1 - size // 2
    after = size - 1 - before
    fill = -np.inf if grow else np.inf
    pad = [(0, 0)] * array.ndim
    pad[axis] = (before, after)
    padded = np.pad(array, pad, constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=axis)
    return windows.max(axis=-1) if grow else windows.min(axis=-1)


def _morph(image: np.ndarray, size: int, grow: bool) -> np.ndarray:
    return _window_extreme(_window_extreme(image, size, 1, grow), size, 2, grow).astype(np.float32)


@node("Morphology")
def morphology(ctx: NodeContext, image: np.ndarray, operation: str, kernel_size: int) -> Result:
    def erode(x: np.ndarray) -> np.ndarray:
        return _morph(x, kernel_size, False)

    def dilate(x: np.ndarray) -> np.ndarray:
        return _morph(x, kernel_size, True)

    operations = {
        "erode": erode,
        "dilate": dilate,
        "open": lambda x: dilate(erode(x)),
        "close": lambda x: erode(dilate(x)),
        "gradient": lambda x: dilate(x) - erode(x),
        "top_hat": lambda x: x - dilate(erode(x)),
        "bottom_hat": lambda x: erode(dilate(x)) - x,
    }
    return Result((as_float32(operations[operation](image)),))
