"""Learned keypoints (XFeat) through onnxruntime: describe a photo, match it against a shortlist.

The network (catalog/train/xfeat.py, exported once to ONNX) gives a heat map already reduced to
its 5x5 local maxima, a reliability map and unit descriptors; here the strongest keypoints are
picked and their descriptors sampled, and two photos are matched by mutual nearest neighbours,
then checked by the same RANSAC similarity as SIFT's matches (`verify`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from catalog import features_card
from catalog.errors import ModelCardError
from catalog.verify import EMPTY_MATCH, Detector, LocalFeatures, PairMatch, geometric_check
from catalog.vocabulary import KeypointDetector

XFEAT_MODEL_PATH = Path(__file__).parent / "models" / "xfeat.onnx"
# The photo's long side as the network sees it (rounded to its multiple of 32).
LONG_SIDE_PX = 320
# As many as SIFT keeps: matching cost grows with the square of this (600 cost 3-4x as much
# and was no better on the shared sets, see bench-verify in bench/README.md).
MAX_KEYPOINTS = 300
# Below this heat a local maximum is not a keypoint (XFeat's published detection threshold).
MIN_HEAT = 0.05
# Mutual nearest neighbours count only when this alike (cosine of unit descriptors; XFeat's
# published matching threshold).
MIN_COSINE = 0.82
DETECTOR = f"xfeat-{LONG_SIDE_PX}-{MAX_KEYPOINTS}"
DESCRIPTOR_DIMENSIONS = 64


class XFeat:
    """One onnxruntime session of the keypoint network. The index's decode threads run it at
    once (onnxruntime allows that); each run keeps to one core, the threads being the parallelism."""

    def __init__(self, model_path: Path = XFEAT_MODEL_PATH, threads: int = 1) -> None:
        import onnxruntime as ort

        if not model_path.is_file():
            raise ModelCardError(model_path, "no such keypoint network file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.card = features_card.card_from_session(self._session, model_path)

    def describe(self, image: Image.Image) -> LocalFeatures:
        """The strongest keypoints of an upright photo (any mode), in its own pixels."""
        grey = image.convert("L")
        multiple = self.card.side_multiple_px
        scale = LONG_SIDE_PX / max(grey.size)
        width, height = (max(multiple, round(side * scale / multiple) * multiple) for side in grey.size)
        pixels = np.asarray(grey.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
        peaks, reliability, descriptors = self._session.run(
            list(features_card.OUTPUT_NAMES), {features_card.INPUT_NAME: pixels[None, None] / 255.0}
        )
        rows, cols = np.nonzero(peaks[0, 0] > MIN_HEAT)
        if len(rows) == 0:
            return LocalFeatures(
                np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_DIMENSIONS), np.float16), grey.size
            )
        # Map positions of each keypoint: cell centres sit at (i + 0.5) * cell_px in pixels.
        cell = self.card.cell_px
        map_x, map_y = (cols + 0.5) / cell - 0.5, (rows + 0.5) / cell - 0.5
        score = peaks[0, 0, rows, cols] * _bilinear(reliability[0], map_x, map_y)[:, 0]
        strongest = np.argsort(-score, kind="stable")[:MAX_KEYPOINTS]
        sampled = _bilinear(descriptors[0], map_x[strongest], map_y[strongest])
        sampled /= np.maximum(np.linalg.norm(sampled, axis=1, keepdims=True), 1e-6)
        points = np.stack([cols[strongest], rows[strongest]], axis=1).astype(np.float32)
        # Back to the pixels of the image given (the network saw it resized to multiples of 32).
        points *= np.asarray([grey.width / width, grey.height / height], dtype=np.float32)
        # Half precision is plenty for unit vectors compared by cosine, and halves what is kept.
        return LocalFeatures(points, sampled.astype(np.float16), grey.size)


def _bilinear(maps: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample (channels, h, w) maps at fractional positions: (n, channels), edges clamped."""
    _, h, w = maps.shape
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = maps[:, y0, x0].T * (1 - fx) + maps[:, y0, x1].T * fx
    bottom = maps[:, y1, x0].T * (1 - fx) + maps[:, y1, x1].T * fx
    return np.asarray(top * (1 - fy) + bottom * fy, dtype=np.float32)


def match_many(query: LocalFeatures, candidates: list[LocalFeatures]) -> list[PairMatch]:
    """Mutual nearest neighbours above MIN_COSINE from `query` to each candidate, then RANSAC."""
    # The stored half precision widened once for the whole shortlist, not once per candidate.
    query_descriptors = query.descriptors.astype(np.float32)
    return [_mutual_matches(query, query_descriptors, candidate) for candidate in candidates]


def _mutual_matches(a: LocalFeatures, a_descriptors: np.ndarray, b: LocalFeatures) -> PairMatch:
    if len(a) < 2 or len(b) < 2:
        return EMPTY_MATCH
    import cv2

    # OpenCV's single-threaded product, as for SIFT (see verify.match_many).
    similarity = cv2.gemm(a_descriptors, b.descriptors.astype(np.float32), 1.0, None, 0.0, flags=cv2.GEMM_2_T)  # type: ignore[call-overload]
    best = similarity.argmax(axis=1)
    back = similarity.argmax(axis=0)
    rows = np.arange(len(best))
    kept = np.flatnonzero((back[best] == rows) & (similarity[rows, best] > MIN_COSINE))
    return geometric_check(a, b, kept, best)


@functools.cache
def detector(model_path: Path = XFEAT_MODEL_PATH) -> Detector:
    """XFeat as a verification detector, its network loaded once per process."""
    network = XFeat(model_path)
    return Detector(
        KeypointDetector.XFEAT,
        DETECTOR,
        LONG_SIDE_PX,
        network.describe,
        match_many,
        "float16",
        DESCRIPTOR_DIMENSIONS,
    )
