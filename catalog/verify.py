"""Local-feature verification: SIFT keypoints, ratio-test matches and RANSAC inliers between two photos.

OpenCV (`pip install 'finprint[verify]'`) is optional: without it `available()` is False and
finprint decides on embeddings alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

# SIFT sees the photo (or its crop) with this long side. Measured on nyala and synthetic fish:
# 320 px keeps the skin pattern's blotches as keypoints and costs about 10 ms per photo on one core.
FEATURE_LONG_SIDE_PX = 320
# The strongest keypoints kept per photo; matching cost grows with the square of this.
MAX_KEYPOINTS = 300
# Lowe's ratio test: a match counts only if its nearest descriptor is clearly nearer than the second.
RATIO = 0.8
# RANSAC's reprojection tolerance as a share of the long side: bodies bend, poses differ a little.
RANSAC_TOLERANCE_FRACTION = 0.03
# Which detector and settings produced cached features; a change invalidates the cache.
DETECTOR = f"sift-{FEATURE_LONG_SIDE_PX}-{MAX_KEYPOINTS}"

_DESCRIPTOR_BYTES = 128


@functools.cache
def available() -> bool:
    """True when OpenCV with SIFT can be imported."""
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2, "SIFT_create")


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one photo: positions in pixels of the described image, and SIFT descriptors."""

    points: np.ndarray  # (n, 2) float32, x and y
    descriptors: np.ndarray  # (n, 128) uint8
    size: tuple[int, int]  # width, height of the described image

    def __len__(self) -> int:
        return len(self.points)

    def to_bytes(self) -> bytes:
        """A compact form for the catalogue: header, float32 points, uint8 descriptors."""
        header = np.asarray([len(self.points), self.size[0], self.size[1]], dtype="<i4").tobytes()
        return header + self.points.astype("<f4").tobytes() + self.descriptors.astype(np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LocalFeatures:
        """Inverse of `to_bytes`."""
        count, width, height = (int(v) for v in np.frombuffer(blob[:12], dtype="<i4"))
        points_end = 12 + count * 8
        points = np.frombuffer(blob[12:points_end], dtype="<f4").reshape(count, 2)
        descriptors = np.frombuffer(blob[points_end:], dtype=np.uint8).reshape(count, _DESCRIPTOR_BYTES)
        return cls(points, descriptors, (width, height))


@dataclass(frozen=True)
class PairMatch:
    """The geometric agreement between two photos."""

    inliers: int
    tentative: int  # matches that passed the ratio test
    # Inlier correspondences: (x_a, y_a, x_b, y_b) in each image's own described pixels.
    lines: np.ndarray


def describe(image: Image.Image) -> LocalFeatures:
    """SIFT keypoints of an upright photo (any mode), at a fixed working size."""
    grey = image.convert("L")
    scale = FEATURE_LONG_SIDE_PX / max(grey.size)
    if scale < 1.0:
        grey = grey.resize(
            (max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
            Image.Resampling.BILINEAR,
        )
    pixels = np.asarray(grey, dtype=np.uint8)
    keypoints, descriptors = _sift().detectAndCompute(pixels, None)
    if descriptors is None or not keypoints:
        return LocalFeatures(
            np.zeros((0, 2), np.float32), np.zeros((0, _DESCRIPTOR_BYTES), np.uint8), grey.size
        )
    points = np.asarray([kp.pt for kp in keypoints], dtype=np.float32)
    # SIFT descriptors are non-negative and below 256 by construction (clipped, scaled by 512).
    return LocalFeatures(points, np.clip(descriptors, 0, 255).astype(np.uint8), grey.size)


@functools.cache
def _sift() -> Any:
    import cv2

    return cv2.SIFT_create(nfeatures=MAX_KEYPOINTS)  # type: ignore[attr-defined]


def _root_sift(descriptors: np.ndarray) -> np.ndarray:
    """Hellinger-kernel descriptors (RootSIFT): Euclidean distance between them compares histograms
    better than raw SIFT does."""
    values = descriptors.astype(np.float32)
    values /= np.maximum(values.sum(axis=1, keepdims=True), 1e-6)
    return np.sqrt(values)


def match(a: LocalFeatures, b: LocalFeatures) -> PairMatch:
    """Ratio-test matches from `a` to `b`, then the inliers of one similarity transform (RANSAC)."""
    return match_many(a, [b])[0]


def match_many(query: LocalFeatures, candidates: list[LocalFeatures]) -> list[PairMatch]:
    """`match` of one photo against several, with the descriptor comparison done in one product:
    a shortlist of 20 costs one matrix multiplication instead of 20."""
    results = [_EMPTY] * len(candidates)
    usable = [i for i, c in enumerate(candidates) if len(c) >= 2]
    if len(query) < 2 or not usable:
        return results
    width = max(len(candidates[i]) for i in usable)
    # Candidates padded to one width; padded slots can never be a nearest neighbour.
    stacked = np.zeros((len(usable), width, _DESCRIPTOR_BYTES), dtype=np.float32)
    valid = np.zeros((len(usable), width), dtype=bool)
    for row, i in enumerate(usable):
        stacked[row, : len(candidates[i])] = _root_sift(candidates[i].descriptors)
        valid[row, : len(candidates[i])] = True
    flat = _root_sift(query.descriptors) @ stacked.reshape(-1, _DESCRIPTOR_BYTES).T
    similarity = flat.reshape(len(query), len(usable), width).transpose(1, 0, 2).copy()
    similarity[~np.broadcast_to(valid[:, None, :], similarity.shape)] = -np.inf
    best = similarity.argmax(axis=2)
    first = np.take_along_axis(similarity, best[:, :, None], axis=2)[:, :, 0]
    np.put_along_axis(similarity, best[:, :, None], -np.inf, axis=2)
    second = similarity.max(axis=2)
    # Unit vectors: distance = sqrt(2 - 2 * similarity); the ratio test compares distances.
    distance_first = np.sqrt(np.maximum(2.0 - 2.0 * first, 0.0))
    distance_second = np.sqrt(np.maximum(2.0 - 2.0 * second, 0.0))
    passes = distance_first < RATIO * distance_second
    for row, i in enumerate(usable):
        results[i] = _geometric_check(query, candidates[i], np.flatnonzero(passes[row]), best[row])
    return results


_EMPTY = PairMatch(0, 0, np.zeros((0, 4), np.float32))


def _geometric_check(
    a: LocalFeatures, b: LocalFeatures, kept_rows: np.ndarray, best: np.ndarray
) -> PairMatch:
    kept_cols = best[kept_rows]
    # Many points of `a` matching one point of `b` are one piece of evidence, not several.
    _, unique = np.unique(kept_cols, return_index=True)
    kept_rows, kept_cols = kept_rows[unique], kept_cols[unique]
    tentative = len(kept_rows)
    if tentative < 3:
        return PairMatch(0, tentative, _EMPTY.lines)
    import cv2

    source = a.points[kept_rows]
    target = b.points[kept_cols]
    tolerance = RANSAC_TOLERANCE_FRACTION * max(b.size)
    transform, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=tolerance, maxIters=500, confidence=0.99
    )
    if transform is None or mask is None:
        return PairMatch(0, tentative, _EMPTY.lines)
    inlier = mask.ravel().astype(bool)
    lines = np.hstack([source[inlier], target[inlier]]).astype(np.float32)
    return PairMatch(int(inlier.sum()), tentative, lines)
