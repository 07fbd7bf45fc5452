"""Node math against hand-computed expectations (ComfyUI's formulas, torch interpolate semantics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import inference.runtime.nodes  # noqa: F401 - registers the nodes
from inference.runtime.files import DataDirs
from inference.runtime.nodes.base import REGISTRY, NodeContext
from inference.runtime.nodes.color import lab_to_rgb, rgb_to_lab
from inference.runtime.nodes.filters import gaussian_1d
from inference.runtime.nodes.resample import upscale


class Recorder:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.progress: list[tuple[int, int]] = []


def run(name: str, tmp_path: Path = Path("/nonexistent"), **inputs: Any) -> tuple[Any, ...]:
    recorder = Recorder()
    ctx = NodeContext(
        node_id="7",
        dirs=DataDirs(tmp_path),
        prompt={},
        extra_pnginfo=None,
        state={},
        report_progress=lambda v, t, p: recorder.progress.append((v, t)),
        report_text=recorder.texts.append,
        check_interrupt=lambda: None,
    )
    result = REGISTRY[name].fn(ctx, **inputs)
    run.last = recorder  # type: ignore[attr-defined]
    return result.outputs


def row(values: list[float]) -> np.ndarray:
    """A 1-pixel-high single-image batch [1, 1, W, 1]."""
    return np.array(values, dtype=np.float32).reshape(1, 1, -1, 1)


def test_bilinear_follows_torch_half_pixel_rule() -> None:
    assert upscale(row([0, 1, 2, 3]), 8, 1, "bilinear").ravel().tolist() == [
        0,
        0.25,
        0.75,
        1.25,
        1.75,
        2.25,
        2.75,
        3,
    ]
    assert upscale(row([0, 1, 2, 3]), 2, 1, "bilinear").ravel().tolist() == [0.5, 2.5]


def test_nearest_exact_and_area() -> None:
    assert upscale(row([0, 1, 2, 3]), 2, 1, "nearest-exact").ravel().tolist() == [1, 3]
    assert upscale(row([0, 1, 2, 3]), 8, 1, "nearest-exact").ravel().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert upscale(row([0, 1, 2, 3]), 2, 1, "area").ravel().tolist() == [0.5, 2.5]
    assert upscale(row([0, 1, 2, 3, 4]), 2, 1, "area").ravel().tolist() == [1, 3]


def test_bicubic_uses_the_a_minus_075_kernel() -> None:
    # Upscaling by 2 samples at t = 0.75 and t = 0.25 between source pixels. With torch's A = -0.75 the four
    # weights at t = 0.25 are (-0.10547, 0.87891, 0.26172, -0.03516), so a ramp i, i+1, ... gives i + 0.296875
    # (not i + 0.25: this kernel does not reproduce straight lines), and by symmetry i + 0.703125 at t = 0.75.
    cubic = upscale(row(list(range(16))), 32, 1, "bicubic").ravel()
    np.testing.assert_allclose(cubic[4:8], [1.703125, 2.296875, 2.703125, 3.296875], atol=1e-6)


def test_center_crop_keeps_the_target_aspect() -> None:
    image = np.zeros((1, 480, 640, 3), dtype=np.float32)
    image[:, :, :80] = 1.0  # a band that the centre crop to a square removes
    out = upscale(image, 480, 480, "nearest-exact", "center")
    assert out.shape == (1, 480, 480, 3)
    assert out.max() == 0.0


def test_scale_nodes_sizes() -> None:
    image = np.random.default_rng(1).random((2, 480, 640, 3), dtype=np.float32)
    assert run("ImageScaleBy", image=image, upscale_method="bilinear", scale_by=0.75)[0].shape == (
        2,
        360,
        480,
        3,
    )
    assert run("ImageScale", image=image, upscale_method="area", width=320, height=0, crop="disabled")[
        0
    ].shape == (2, 240, 320, 3)
    assert run("ImageScale", image=image, upscale_method="lanczos", width=100, height=50, crop="center")[
        0
    ].shape == (2, 50, 100, 3)
    assert run("ImageScaleToMaxDimension", image=image, upscale_method="area", largest_size=320)[0].shape == (
        2,
        240,
        320,
        3,
    )


def test_invert_empty_image_crop_and_size() -> None:
    image = np.random.default_rng(2).random((1, 10, 20, 3), dtype=np.float32)
    np.testing.assert_allclose(run("ImageInvert", image=image)[0], 1 - image)
    empty = run("EmptyImage", width=4, height=3, batch_size=2, color=0x102030)[0]
    assert empty.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(empty[1, 2, 3], [16 / 255, 32 / 255, 48 / 255])
    crop = run("ImageCrop", image=image, width=5, height=4, x=3, y=2)[0]
    np.testing.assert_array_equal(crop, image[:, 2:6, 3:8])
    assert run("ImageCrop", image=image, width=5, height=5, x=99, y=99)[0].shape == (1, 1, 1, 3)
    assert run("GetImageSize", image=image) == (20, 10, 1)
    assert run.last.texts == ["width: 20, height: 10\n batch size: 1"]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(run("ImageToMask", image=image, channel="green")[0], image[..., 1])


def test_gaussian_kernel_is_comfyuis_unit_grid_kernel() -> None:
    np.testing.assert_allclose(gaussian_1d(3, 1.0), np.array([0.274068, 0.451863, 0.274068]), atol=1e-6)


def test_blur_of_a_point_is_the_kernel_and_keeps_constants() -> None:
    image = np.zeros((1, 9, 9, 1), dtype=np.float32)
    image[0, 4, 4, 0] = 1.0
    blurred = run("ImageBlur", image=image, blur_radius=1, sigma=1.0)[0]
    k = gaussian_1d(3, 1.0)
    np.testing.assert_allclose(blurred[0, 3:6, 3:6, 0], np.outer(k, k), atol=1e-6)
    flat = np.full((1, 16, 16, 3), 0.3, dtype=np.float32)
    np.testing.assert_allclose(run("ImageBlur", image=flat, blur_radius=5, sigma=2.0)[0], flat, atol=1e-6)


def test_sharpen_boosts_an_edge_and_keeps_flat_areas() -> None:
    image = np.zeros((1, 8, 8, 3), dtype=np.float32)
    image[:, :, 4:] = 0.5
    sharp = run("ImageSharpen", image=image, sharpen_radius=1, sigma=1.0, alpha=0.1)[0]
    k = gaussian_1d(3, 1.0)
    # alpha 0.1 gives 2x - blur(x): left of the edge 0 - 0.5*k[2] clamps to 0, right of it the step rises
    assert sharp[0, 4, 3, 0] == 0.0
    assert sharp[0, 4, 4, 0] == pytest.approx(1.0 - 0.5 * (k[1] + k[2]), abs=1e-5)
    assert sharp[0, 4, 7, 0] == pytest.approx(0.5, abs=1e-6)
    unchanged = run("ImageSharpen", image=image, sharpen_radius=2, sigma=1.0, alpha=0.0)[0]
    np.testing.assert_allclose(unchanged, image, atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("normal", 0.6),
        ("multiply", 0.2 * 0.6),
        ("screen", 1 - 0.8 * 0.4),
        ("overlay", 2 * 0.2 * 0.6),
        ("soft_light", 0.2 + (2 * 0.6 - 1) * (((16 * 0.2 - 12) * 0.2 + 4) * 0.2 - 0.2)),
        ("difference", -0.4),
    ],
)
def test_blend_modes(mode: str, expected: float) -> None:
    a = np.full((1, 2, 2, 3), 0.2, dtype=np.float32)
    b = np.full((1, 2, 2, 3), 0.6, dtype=np.float32)
    full = run("ImageBlend", image1=a, image2=b, blend_factor=1.0, blend_mode=mode)[0]
    assert full[0, 0, 0, 0] == pytest.approx(max(expected, 0.0), abs=1e-6)
    half = run("ImageBlend", image1=a, image2=b, blend_factor=0.5, blend_mode=mode)[0]
    # The mode result is mixed before clamping: difference gives 0.1 - 0.2 -> 0.
    assert half[0, 0, 0, 0] == pytest.approx(max(0.5 * 0.2 + 0.5 * expected, 0.0), abs=1e-6)


def test_blend_resizes_the_second_image_to_the_first() -> None:
    a = np.zeros((1, 10, 20, 3), dtype=np.float32)
    b = np.ones((1, 5, 5, 3), dtype=np.float32)
    assert run("ImageBlend", image1=a, image2=b, blend_factor=0.5, blend_mode="normal")[0].shape == (
        1,
        10,
        20,
        3,
    )


def test_adjustments_and_noise() -> None:
    image = np.array([[[[0.2, 0.5, 0.9]]]], dtype=np.float32)
    np.testing.assert_allclose(
        run("AdjustBrightness", images=image, factor=1.5)[0], [[[[0.3, 0.75, 1.0]]]], atol=1e-6
    )
    np.testing.assert_allclose(
        run("AdjustContrast", images=image, factor=2.0)[0], [[[[0.0, 0.5, 1.0]]]], atol=1e-6
    )
    flat = np.full((1, 64, 64, 3), 0.5, dtype=np.float32)
    noisy = run("ImageAddNoise", image=flat, seed=3, strength=0.1)[0]
    assert 0.08 < float(np.std(noisy - flat)) < 0.12
    np.testing.assert_array_equal(noisy, run("ImageAddNoise", image=flat, seed=3, strength=0.1)[0])


def test_resize_and_pad_geometry() -> None:
    image = np.zeros((1, 480, 640, 3), dtype=np.float32)
    out = run(
        "ResizeAndPadImage",
        image=image,
        target_width=512,
        target_height=512,
        padding_color="white",
        interpolation="area",
    )[0]
    assert out.shape == (1, 512, 512, 3)
    assert out[0, :64].min() == 1.0
    assert out[0, 448:].min() == 1.0
    assert out[0, 64:448].max() == 0.0


def test_flip_and_rotate() -> None:
    image = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    np.testing.assert_array_equal(
        run("ImageFlip", image=image, flip_method="x-axis: vertically")[0], image[:, ::-1]
    )
    np.testing.assert_array_equal(
        run("ImageFlip", image=image, flip_method="y-axis: horizontally")[0], image[:, :, ::-1]
    )
    rotated = run("ImageRotate", image=image, rotation="90 degrees")[0]
    assert rotated.shape == (1, 3, 2, 1)
    assert rotated[0, :, :, 0].tolist() == [[3, 0], [4, 1], [5, 2]]  # clockwise


def test_mask_nodes() -> None:
    point = np.zeros((1, 5, 5), dtype=np.float32)
    point[0, 2, 2] = 1.0
    grown = run("GrowMask", mask=point, expand=1, tapered_corners=True)[0][0]
    assert grown.sum() == 5
    assert grown[1, 1] == 0
    assert run("GrowMask", mask=point, expand=1, tapered_corners=False)[0][0].sum() == 9
    assert run("ThresholdMask", mask=np.array([[[0.2, 0.7]]], dtype=np.float32), value=0.5)[0].tolist() == [
        [[0, 1]]
    ]
    ones = np.ones((1, 4, 4), dtype=np.float32)
    feathered = run("FeatherMask", mask=ones, left=2, top=0, right=0, bottom=0)[0]
    assert feathered[0, 0, :3].tolist() == [0.5, 1.0, 1.0]
    combined = run(
        "MaskComposite",
        destination=ones,
        source=np.full((1, 2, 2), 0.5, dtype=np.float32),
        x=1,
        y=1,
        operation="subtract",
    )[0]
    assert combined[0, 1:3, 1:3].tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert combined[0, 0, 0] == 1.0
    assert run("SolidMask", value=0.25, width=3, height=2)[0].shape == (1, 2, 3)
    np.testing.assert_array_equal(run("InvertMask", mask=point)[0], 1 - point)
    assert run("MaskToImage", mask=point)[0].shape == (1, 5, 5, 3)


def test_composite_pastes_source_at_offset_through_the_mask() -> None:
    destination = np.zeros((1, 6, 6, 3), dtype=np.float32)
    source = np.ones((1, 2, 2, 3), dtype=np.float32)
    out = run("ImageCompositeMasked", destination=destination, source=source, x=3, y=1, resize_source=False)[
        0
    ]
    assert out[0, 1:3, 3:5].min() == 1.0
    assert out.sum() == 4 * 3
    half = run(
        "ImageCompositeMasked",
        destination=destination,
        source=source,
        x=5,
        y=5,
        resize_source=False,
        mask=np.full((1, 2, 2), 0.5, dtype=np.float32),
    )[0]
    assert half[0, 5, 5, 0] == 0.5
    assert half.sum() == 0.5 * 3


def test_lab_round_trip_and_reinhard_transfer() -> None:
    rng = np.random.default_rng(4)
    colours = rng.random((50, 3))
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(colours)), colours, atol=1e-4)
    white = rgb_to_lab(np.array([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(white, [100.0, 0.0, 0.0], atol=1e-2)
    target = (rng.random((1, 32, 32, 3)) * 0.5).astype(np.float32)
    reference = (0.4 + rng.random((1, 32, 32, 3)) * 0.3).astype(np.float32)
    out = run(
        "ColorTransfer",
        image_target=target,
        image_ref=reference,
        method="reinhard_lab",
        source_stats="per_frame",
        strength=1.0,
    )[0]
    ours, theirs = rgb_to_lab(out.astype(np.float64)), rgb_to_lab(reference.astype(np.float64))
    np.testing.assert_allclose(ours.reshape(-1, 3).mean(0), theirs.reshape(-1, 3).mean(0), atol=1.0)
    assert run.last.progress == [(1, 1)]  # type: ignore[attr-defined]
    same = run(
        "ColorTransfer",
        image_target=target,
        image_ref=reference,
        method="mkl_lab",
        source_stats="uniform",
        strength=0.0,
    )[0]
    np.testing.assert_array_equal(same, target)
    matched = run(
        "ColorTransfer",
        image_target=target,
        image_ref=target,
        method="histogram",
        source_stats="per_frame",
        strength=1.0,
    )[0]
    np.testing.assert_allclose(matched, target, atol=1.5 / 255)


def test_morphology_dilate_and_erode() -> None:
    image = np.zeros((1, 7, 7, 1), dtype=np.float32)
    image[0, 3, 3] = 1.0
    dilated = run("Morphology", image=image, operation="dilate", kernel_size=3)[0]
    assert dilated.sum() == 9
    assert run("Morphology", image=dilated, operation="erode", kernel_size=3)[0].sum() == 1
    assert run("Morphology", image=image, operation="open", kernel_size=3)[0].sum() == 0


def test_load_and_save_round_trip(tmp_path: Path) -> None:
    dirs = DataDirs(tmp_path)
    dirs.prepare()
    image = np.random.default_rng(5).random((2, 8, 8, 3)).astype(np.float32)
    ui = (
        REGISTRY["SaveImage"]
        .fn(
            NodeContext(
                "9",
                dirs,
                {"9": {}},
                {"workflow": {"id": 1}},
                {},
                lambda *a: None,
                lambda t: None,
                lambda: None,
            ),
            images=image,
            filename_prefix="sub/pic",
        )
        .ui
    )
    assert ui == {
        "images": [
            {"filename": "pic_00001_.png", "subfolder": "sub", "type": "output"},
            {"filename": "pic_00002_.png", "subfolder": "sub", "type": "output"},
        ]
    }
    loaded, mask = run("LoadImage", tmp_path, image="sub/pic_00001_.png [output]")
    np.testing.assert_allclose(loaded[0], np.floor(image[0] * 255) / 255, atol=1e-6)
    assert mask.shape == (1, 64, 64)
    assert mask.max() == 0
