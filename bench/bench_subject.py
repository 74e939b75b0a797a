"""Keypoints restricted to a subject region: the whole photo, a central ellipse, or GrabCut's
foreground, on the default model's fitting pairs (every held-out photo's 20 nearest photos).

Usage: python bench/bench_subject.py [--work DIR]

Per set: the ROC AUC of raw inliers for same- against different-animal pairs, and how many pairs
of each reach 17 inliers (the default fusion's decision point); GrabCut's cost per photo. A region
earns its place if it keeps the animals' pairs and drops the others' (the activation map of the
embedding network is not measured: the ONNX file gives only the embedding).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from benchtable import bench_console, measures_table
from heldout import held_out_or_say
from PIL import Image

from catalog import verify
from catalog.embed import Embedder
from catalog.offline.evaluate import embed_labelled
from catalog.offline.labels import source_of
from catalog.offline.metrics import roc_auc
from catalog.offline.shortlist import verify_shortlists
from catalog.preprocess import load_image
from catalog.settings import DEFAULT_MODEL_PATH

# The default fusion's decision point, in inliers (score 2.48 = -1.34 + 1.35 log(1 + 17)).
DECISIVE_INLIERS = 17
GRABCUT_WIDTH_PX = 160


def centre_mask(features: verify.LocalFeatures) -> np.ndarray:
    """Keypoints inside the ellipse over the central 80% of the photo."""
    width, height = features.size
    x, y = features.points[:, 0] / width - 0.5, features.points[:, 1] / height - 0.5
    return np.asarray((x / 0.4) ** 2 + (y / 0.4) ** 2 <= 1.0)


def grabcut_mask(image: Image.Image, features: verify.LocalFeatures) -> np.ndarray:
    """Keypoints on GrabCut's foreground (3 rounds from the central 90%, at 160 px wide)."""
    height = max(8, round(GRABCUT_WIDTH_PX * image.height / image.width))
    small = np.asarray(image.convert("RGB").resize((GRABCUT_WIDTH_PX, height)))[:, :, ::-1].copy()
    labels = np.zeros(small.shape[:2], np.uint8)
    rect = (int(0.05 * GRABCUT_WIDTH_PX), int(0.05 * height), int(0.9 * GRABCUT_WIDTH_PX), int(0.9 * height))
    try:
        cv2.grabCut(small, labels, rect, np.zeros((1, 65)), np.zeros((1, 65)), 3, cv2.GC_INIT_WITH_RECT)
        foreground = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    except cv2.error:
        foreground = np.ones(small.shape[:2], bool)
    width, full_height = features.size
    columns = np.clip((features.points[:, 0] / width * GRABCUT_WIDTH_PX).astype(int), 0, GRABCUT_WIDTH_PX - 1)
    rows = np.clip((features.points[:, 1] / full_height * height).astype(int), 0, height - 1)
    return np.asarray(foreground[rows, columns])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    args = parser.parse_args()
    console = bench_console()
    held_out = held_out_or_say(args.work, console)
    if not held_out:
        return
    photos = [photo for group in held_out.values() for photo in group]
    embedder = Embedder(DEFAULT_MODEL_PATH)
    vectors, kept, _, features, _ = embed_labelled(embedder, photos, 64, verify.SIFT)
    pairs = verify_shortlists(vectors, kept, features, embedder.card.sides, 20)
    masks: dict[str, list[np.ndarray]] = {"centre": [], "grabcut": []}
    grabcut_seconds = 0.0
    for photo, described in zip(kept, features, strict=True):
        image = load_image(photo.path, embedder.card.input, photo.bbox, verify.FEATURE_LONG_SIDE_PX)
        masks["centre"].append(centre_mask(described))
        started = time.perf_counter()
        masks["grabcut"].append(grabcut_mask(image, described))
        grabcut_seconds += time.perf_counter() - started
    variants = {"whole photo": features} | {
        name: [
            verify.LocalFeatures(f.points[m], f.descriptors[m], f.size)
            for f, m in zip(features, kept_masks, strict=True)
        ]
        for name, kept_masks in masks.items()
    }
    sets = np.asarray([source_of(photo) for photo in kept])[pairs.query]
    columns: dict[str, dict[str, str]] = {}
    for name, described in variants.items():
        inliers = np.zeros(len(pairs.same))
        for query in np.unique(pairs.query):
            rows = np.flatnonzero(pairs.query == query)
            matches = verify.match_many(described[query], [described[int(c)] for c in pairs.candidate[rows]])
            inliers[rows] = [m.inliers for m in matches]
        column = {"keypoints kept per photo": f"{np.mean([len(f) for f in described]):.0f}"}
        for set_name in sorted(set(sets.tolist())):
            here = sets == set_name
            same, different = here & pairs.same, here & ~pairs.same
            column[f"{set_name}: inlier ROC AUC"] = f"{roc_auc(-inliers[same], -inliers[different]):.3f}"
            column[f"{set_name}: same / different pairs >= {DECISIVE_INLIERS} inliers"] = (
                f"{int(np.sum(same & (inliers >= DECISIVE_INLIERS)))} / "
                f"{int(np.sum(different & (inliers >= DECISIVE_INLIERS)))}"
            )
        columns[name] = column
    console.print(measures_table("Keypoints on a subject region, default model's fitting pairs", columns))
    console.print(f"GrabCut: {1000 * grabcut_seconds / len(kept):.0f} ms a photo (one core)", markup=False)


if __name__ == "__main__":
    main()
