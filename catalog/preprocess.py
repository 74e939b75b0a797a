"""Decode a photo and turn it into the network's input, as the model card prescribes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from catalog.modelcard import InputSpec

# Decompression-bomb guard: camera photos are far below this; a 20000x20000 trap is not.
Image.MAX_IMAGE_PIXELS = 120_000_000

_ROTATING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112


def load_image(path: Path, spec: InputSpec) -> Image.Image:
    """Open a file and prepare it for the network."""
    with Image.open(path) as image:
        return prepare(image, spec)


def prepare(image: Image.Image, spec: InputSpec) -> Image.Image:
    """Draft-decode (JPEG DCT scaling), apply EXIF orientation and set the colour mode."""
    if image.format == "JPEG":
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        want = (spec.width, spec.height)
        if orientation in _ROTATING_ORIENTATIONS:
            want = (spec.height, spec.width)
        # draft picks the largest DCT scale that still gives at least `want` pixels.
        image.draft("RGB", want)
    image.load()
    upright = ImageOps.exif_transpose(image)
    mode = "L" if spec.channels == 1 else "RGB"
    if upright.mode != mode:
        if upright.mode in ("RGBA", "LA", "P", "PA"):
            upright = _flatten_alpha(upright)
        elif upright.mode.startswith("I;16") or upright.mode in ("I", "F"):
            upright = _to_8bit(upright)
        upright = upright.convert(mode)
    return upright


def to_tensor(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """Stretch to the card's size, scale to [0, 1], normalise per channel; CHW float32."""
    resized = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    normalised = (pixels - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


def preprocess(path: Path, spec: InputSpec) -> np.ndarray:
    """The whole contract in one call: file -> CHW float32 tensor."""
    return to_tensor(load_image(path, spec), spec)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    top = float(values.max()) or 1.0
    return Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8))
