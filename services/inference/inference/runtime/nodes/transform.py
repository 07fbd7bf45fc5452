"""Geometry and batch nodes: flips, rotations, padding, max-dimension scaling, batch slicing, dataset-style
crops and edge resizes (the latter go through 8-bit Pillow images, as ComfyUI's do)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from inference.runtime.nodes.base import NodeContext, Result, as_float32, node
from inference.runtime.nodes.resample import upscale


@node("ImageFlip")
def image_flip(ctx: NodeContext, image: np.ndarray, flip_method: str) -> Result:
    axis = 1 if flip_method.startswith("x") else 2
    return Result((np.ascontiguousarray(np.flip(image, axis=axis)),))


@node("ImageRotate")
def image_rotate(ctx: NodeContext, image: np.ndarray, rotation: str) -> Result:
    turns = {"90": 1, "180": 2, "270": 3}.get(rotation.split(" ")[0], 0)
    return Result((np.ascontiguousarray(np.rot90(image, k=turns, axes=(2, 1))),))


@node("ImageScaleToMaxDimension")
def image_scale_to_max_dimension(
    ctx: NodeContext, image: np.ndarray, upscale_method: str, largest_size: int
) -> Result:
    height, width = image.shape[1], image.shape[2]
    if height > width:
        width, height = round((width / height) * largest_size), largest_size
    elif width > height:
        width, height = largest_size, round((height / width) * largest_size)
    else:
        width = height = largest_size
    return Result((upscale(image, width, height, upscale_method),))


@node("ImageScaleToTotalPixels")
def image_scale_to_total_pixels(
    ctx: NodeContext, image: np.ndarray, upscale_method: str, megapixels: float, resolution_steps: int = 1
) -> Result:
    total = megapixels * 1024 * 1024
    scale = (total / (image.shape[2] * image.shape[1])) ** 0.5
    width = round(image.shape[2] * scale / resolution_steps) * resolution_steps
    height = round(image.shape[1] * scale / resolution_steps) * resolution_steps
    return Result((upscale(image, max(width, 1), max(height, 1), upscale_method),))


@node("ResizeAndPadImage")
def resize_and_pad_image(
    ctx: NodeContext,
    image: np.ndarray,
    target_width: int,
    target_height: int,
    padding_color: str,
    interpolation: str,
) -> Result:
    batch, height, width, channels = image.shape
    scale = min(target_width / width, target_height / height)
    new_w, new_h = int(width * scale), int(height * scale)
    resized = upscale(image, new_w, new_h, interpolation)
    out = np.full(
        (batch, target_height, target_width, channels),
        0.0 if padding_color == "black" else 1.0,
        dtype=np.float32,
    )
    y, x = (target_height - new_h) // 2, (target_width - new_w) // 2
    out[:, y : y + new_h, x : x + new_w] = resized
    return Result((out,))


@node("ImagePadForOutpaint")
def image_pad_for_outpaint(
    ctx: NodeContext, image: np.ndarray, left: int, top: int, right: int, bottom: int, feathering: int
) -> Result:
    batch, height, width, channels = image.shape
    out = np.full((batch, height + top + bottom, width + left + right, channels), 0.5, dtype=np.float32)
    out[:, top : top + height, left : left + width] = image
    mask = np.ones((height + top + bottom, width + left + right), dtype=np.float32)
    inner = np.zeros((height, width), dtype=np.float32)
    if feathering > 0 and feathering * 2 < height and feathering * 2 < width:
        rows = np.arange(height)[:, None]
        cols = np.arange(width)[None, :]
        distance = np.minimum.reduce(
            [
                np.broadcast_to(rows if top != 0 else height, (height, width)),
                np.broadcast_to(height - rows if bottom != 0 else height, (height, width)),
                np.broadcast_to(cols if left != 0 else width, (height, width)),
                np.broadcast_to(width - cols if right != 0 else width, (height, width)),
            ]
        )
        value = (feathering - distance) / feathering
        inner = np.where(distance < feathering, value * value, 0.0).astype(np.float32)
    mask[top : top + height, left : left + width] = inner
    return Result((out, mask[None]))


@node("ImageBatch")
def image_batch(ctx: NodeContext, image1: np.ndarray, image2: np.ndarray) -> Result:
    if image1.shape[-1] != image2.shape[-1]:

        def opaque(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a, np.ones((*a.shape[:-1], 1), dtype=np.float32)], axis=-1)

        image1, image2 = (
            (image1, opaque(image2)) if image1.shape[-1] > image2.shape[-1] else (opaque(image1), image2)
        )
    if image1.shape[1:] != image2.shape[1:]:
        image2 = upscale(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
    return Result((np.concatenate([image1, image2]).astype(np.float32),))


@node("RepeatImageBatch")
def repeat_image_batch(ctx: NodeContext, image: np.ndarray, amount: int) -> Result:
    return Result((np.tile(image, (amount, 1, 1, 1)),))


@node("ImageFromBatch")
def image_from_batch(ctx: NodeContext, image: np.ndarray, batch_index: int, length: int) -> Result:
    if batch_index < 0:
        batch_index += image.shape[0]
    batch_index = max(0, min(image.shape[0] - 1, batch_index))
    length = min(image.shape[0] - batch_index, length)
    return Result((image[batch_index : batch_index + length].copy(),))


def _to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(image * 255.0, 0, 255).astype(np.uint8))


def _from_pil(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.float32)[None] / 255.0


def _per_frame(image: np.ndarray, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([_from_pil(fn(_to_pil(frame))) for frame in image])


@node("CenterCropImages")
def center_crop_images(ctx: NodeContext, images: np.ndarray, width: int, height: int) -> Result:
    def crop(img: Image.Image) -> Image.Image:
        left, top = max(0, (img.width - width) // 2), max(0, (img.height - height) // 2)
        return img.crop((left, top, min(img.width, left + width), min(img.height, top + height)))

    return Result((_per_frame(images, crop),))


@node("RandomCropImages")
def random_crop_images(ctx: NodeContext, images: np.ndarray, width: int, height: int, seed: int) -> Result:
    def crop(img: Image.Image) -> Image.Image:
        rng = np.random.RandomState(seed % (2**32 - 1))
        max_left, max_top = max(0, img.width - width), max(0, img.height - height)
        left = rng.randint(0, max_left + 1) if max_left > 0 else 0
        top = rng.randint(0, max_top + 1) if max_top > 0 else 0
        return img.crop((left, top, min(img.width, left + width), min(img.height, top + height)))

    return Result((_per_frame(images, crop),))


@node("ResizeImagesByLongerEdge")
def resize_by_longer_edge(ctx: NodeContext, images: np.ndarray, longer_edge: int) -> Result:
    def resize(img: Image.Image) -> Image.Image:
        w, h = img.size
        size = (
            (longer_edge, int(h * (longer_edge / w))) if w > h else (int(w * (longer_edge / h)), longer_edge)
        )
        return img.resize(size, Image.Resampling.LANCZOS)

    return Result((_per_frame(images, resize),))


@node("ResizeImagesByShorterEdge")
def resize_by_shorter_edge(ctx: NodeContext, images: np.ndarray, shorter_edge: int) -> Result:
    def resize(img: Image.Image) -> Image.Image:
        w, h = img.size
        size = (
            (shorter_edge, int(h * (shorter_edge / w)))
            if w < h
            else (int(w * (shorter_edge / h)), shorter_edge)
        )
        return img.resize(size, Image.Resampling.LANCZOS)

    return Result((_per_frame(images, resize),))


@node("AdjustBrightness")
def adjust_brightness(ctx: NodeContext, images: np.ndarray, factor: float) -> Result:
    return Result((as_float32(np.clip(images * factor, 0.0, 1.0)),))


@node("AdjustContrast")
def adjust_contrast(ctx: NodeContext, images: np.ndarray, factor: float) -> Result:
    return Result((as_float32(np.clip((images - 0.5) * factor + 0.5, 0.0, 1.0)),))


@node("NormalizeImages")
def normalize_images(ctx: NodeContext, images: np.ndarray, mean: float, std: float) -> Result:
    return Result((as_float32((images - mean) / std),))


@node("ImageAddNoise")
def image_add_noise(ctx: NodeContext, image: np.ndarray, seed: int, strength: float) -> Result:
    # Gaussian noise from a seeded generator; ComfyUI draws from torch's generator, so values differ
    # while the distribution and the seed-for-seed reproducibility are the same.
    rng = np.random.Generator(np.random.PCG64(seed))
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    return Result((as_float32(np.clip(image + strength * noise, 0.0, 1.0)),))
