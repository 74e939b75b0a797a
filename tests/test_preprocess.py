"""Preprocessing follows the card: orientation, stretch, scale, normalise; draft mode is exact enough."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from catalog.modelcard import InputSpec
from catalog.preprocess import load_image, preprocess

SPEC = InputSpec(height=32, width=64, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _two_tone(width: int, height: int) -> Image.Image:
    """Left half red, right half blue: orientation mistakes show."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels)


def test_tensor_has_card_shape_and_normalisation(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("RGB", (100, 40), (128, 128, 128)).save(path)
    tensor = preprocess(path, SPEC)
    assert tensor.shape == (3, 32, 64) and tensor.dtype == np.float32
    assert np.allclose(tensor, (128 / 255 - 0.5) / 0.25, atol=1e-5)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored turned a quarter counter-clockwise (red at the bottom) with orientation 6: viewers
    # turn it a quarter clockwise, back to red on the left. The wrong turn would put red right.
    stored = _two_tone(400, 200).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    image = load_image(path, SPEC)
    assert image.width > image.height
    pixels = np.asarray(image, dtype=np.float32)
    left, right = (
        pixels[:, : image.width // 4].mean(axis=(0, 1)),
        pixels[:, -image.width // 4 :].mean(axis=(0, 1)),
    )
    assert left[0] > 200 and right[2] > 200


def test_draft_decode_shrinks_big_jpegs_but_keeps_enough_pixels(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _two_tone(2048, 1024).save(path, quality=90)
    image = load_image(path, SPEC)
    assert SPEC.width <= image.width < 2048
    assert SPEC.height <= image.height < 1024


def test_a_cropped_draft_keeps_the_pixels_keypoints_ask_for(tmp_path: Path) -> None:
    # Keypoints are found on the crop: its long side, not the whole photo's, needs the pixels.
    path = tmp_path / "big.jpg"
    _two_tone(4096, 2048).save(path, quality=90)
    crop = load_image(path, SPEC, bbox=(1024, 512, 1024, 512), min_long_side_px=320)
    assert crop.width >= 320
    # Without keypoints the network's own size is enough, and draft mode shrinks further.
    assert load_image(path, SPEC, bbox=(1024, 512, 1024, 512)).width < 320


def test_greyscale_card_gives_one_channel(tmp_path: Path) -> None:
    path = tmp_path / "colour.png"
    _two_tone(64, 32).save(path)
    spec = InputSpec(16, 16, 1, (0.0,), (1.0,))
    assert preprocess(path, spec).shape == (1, 16, 16)


def test_alpha_and_sixteen_bit_images_are_readable(tmp_path: Path) -> None:
    rgba = tmp_path / "alpha.png"
    Image.new("LA", (20, 20), (100, 50)).save(rgba)
    deep = tmp_path / "deep.tif"
    Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)).save(deep)
    assert preprocess(rgba, SPEC).shape == (3, 32, 64)
    assert np.isfinite(preprocess(deep, SPEC)).all()
