"""How far a photo rewritten in place moves in the embedding: the margin behind SAME_PICTURE_FRACTION.

Usage: python bench/bench_same_picture.py [--photos 40] [--seed 3]

Drawn survey photos are re-encoded as tagging tools and re-exports do (JPEG quality 70, 85 and
95, and a half-size export) and embedded again with the shipped model. Printed beside the limit
a night uses to call a rewritten file the same picture (SAME_PICTURE_FRACTION of the threshold):
how far the re-encodings moved (median, max) and how near the nearest *other* photo of the same
set lies (min, median), which an edit must stay well short of.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
from benchtable import bench_console, measures_table
from PIL import Image

from catalog.embed import Embedder
from catalog.night.tonight import SAME_PICTURE_FRACTION
from catalog.preprocess import to_tensor
from catalog.settings import DEFAULT_MODEL_PATH
from catalog.synthetic import generate_archive

QUALITIES = (70, 85, 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    embedder = Embedder(DEFAULT_MODEL_PATH)

    def embed(image: Image.Image) -> np.ndarray:
        vectors: np.ndarray = embedder.embed(to_tensor(image.convert("RGB"), embedder.card.input)[None])
        return vectors[0]

    with tempfile.TemporaryDirectory(prefix="bench-same-picture-") as folder:
        generate_archive(Path(folder), n_individuals=20, n_surveys=2, seed=args.seed)
        photos = sorted(Path(folder).rglob("*.jpg"))[: args.photos]
        originals, moved = [], []
        for path in photos:
            with Image.open(path) as image:
                image.load()
                original = embed(image)
                originals.append(original)
                exports = []
                for quality in QUALITIES:
                    buffer = io.BytesIO()
                    image.save(buffer, "JPEG", quality=quality)
                    exports.append(Image.open(buffer))
                exports.append(image.resize((image.width // 2, image.height // 2)))
                moved += [float(np.linalg.norm(original - embed(export))) for export in exports]
    vectors = np.stack(originals)
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    nearest_other = distances.min(axis=1)
    threshold = embedder.card.threshold
    figures = {
        "photos (drawn), re-encodings of each": f"{len(photos)}, {len(QUALITIES) + 1}",
        "model threshold": f"{threshold:.3f}",
        "same-picture limit (fraction x threshold)": f"{SAME_PICTURE_FRACTION * threshold:.3f}",
        "re-encoded: distance moved, median / max": f"{np.median(moved):.3f} / {max(moved):.3f}",
        "nearest other photo: min / median": f"{nearest_other.min():.3f} / {np.median(nearest_other):.3f}",
    }
    bench_console().print(measures_table("A photo rewritten in place", {"": figures}))


if __name__ == "__main__":
    main()
