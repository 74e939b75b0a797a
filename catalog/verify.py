"""Local-feature verification: SIFT keypoints, ratio-test matches and RANSAC inliers between two
photos, and what every detector shares (features, the RANSAC check, distinctive inliers).

OpenCV (`pip install 'finprint[verify]'`) is optional: without it `available()` is False and
finprint decides on embeddings alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
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
# Two photos' agreeing keypoints are "the same pixels" (one photograph seen twice: a resized or
# re-encoded copy, two crops of one frame) when, under a least-median similarity fitted to the
# inliers, a keypoint lands within this many pixels of its match and their descriptors are this
# alike. Measured at the described size (320 px): copies and crops of one frame (drawn fish, zebra,
# fs48) put their inliers 0.01-0.19 px from it (median); two photos of one animal 0.3-1.8 px
# (drawn fish, whose pattern is painted rigidly) and 1.2-3.6 px (zebra frames 3 apart).
SAME_PIXELS_RESIDUAL_PX = 0.35
SAME_PIXELS_DESCRIPTOR_DISTANCE = 0.15
# Which detector and settings produced cached features; a change invalidates the cache.
DETECTOR = f"sift-{FEATURE_LONG_SIDE_PX}-{MAX_KEYPOINTS}"

_DESCRIPTOR_BYTES = 128
# RANSAC draws its samples from OpenCV's random generator, which other OpenCV calls also advance:
# seeded before each pair, a pair matched again (a rerun) cannot depend on what ran before it.
RANSAC_SEED = 20240603


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
    """Keypoints of one photo: positions in pixels of the described image, and their descriptors."""

    points: np.ndarray  # (n, 2) float32, x and y
    # (n, 128) uint8 from SIFT; (n, 64) float16 unit vectors from a learned detector.
    descriptors: np.ndarray
    size: tuple[int, int]  # width, height of the described image

    def __len__(self) -> int:
        return len(self.points)

    def unit_descriptors(self) -> np.ndarray:
        """Descriptors as unit-length float32 rows, whichever detector made them (RootSIFT for
        SIFT's bytes, XFeat's own unit vectors otherwise)."""
        if self.descriptors.dtype == np.uint8:
            return self.root_sift()
        values = self.descriptors.astype(np.float32)
        return np.asarray(values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-6))

    def root_sift(self) -> np.ndarray:
        """The descriptors as RootSIFT, computed once per photo (a catalogued photo is matched
        against many new ones)."""
        cached = self.__dict__.get("_root_sift")
        if cached is None:
            cached = _root_sift(self.descriptors)
            # Frozen for callers; this memo is invisible to them.
            object.__setattr__(self, "_root_sift", cached)
        return cached

    def to_bytes(self) -> bytes:
        """A compact form for the catalogue: header, float32 points, descriptors as they are
        (the detector that made them knows their type: see `Detector.features_from_bytes`)."""
        header = np.asarray([len(self.points), self.size[0], self.size[1]], dtype="<i4").tobytes()
        descriptors = self.descriptors.astype(self.descriptors.dtype.newbyteorder("<"), copy=False)
        return header + self.points.astype("<f4").tobytes() + descriptors.tobytes()

    @classmethod
    def from_bytes(
        cls, blob: bytes, dtype: np.dtype[Any] | type = np.uint8, dimensions: int = _DESCRIPTOR_BYTES
    ) -> LocalFeatures:
        """Inverse of `to_bytes`, for descriptors of this type and length (SIFT's by default)."""
        count, width, height = (int(v) for v in np.frombuffer(blob[:12], dtype="<i4"))
        points_end = 12 + count * 8
        points = np.frombuffer(blob[12:points_end], dtype="<f4").reshape(count, 2)
        stored = np.dtype(dtype).newbyteorder("<")
        descriptors = np.frombuffer(blob[points_end:], dtype=stored).reshape(count, dimensions)
        return cls(points, descriptors, (width, height))


@dataclass(frozen=True)
class PairMatch:
    """The geometric agreement between two photos."""

    inliers: int
    tentative: int  # matches that passed the ratio test
    # Inlier correspondences: (x_a, y_a, x_b, y_b) in each image's own described pixels.
    lines: np.ndarray
    # Which of the first photo's keypoints the inliers are (indices into its points).
    query_keypoints: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Per inlier: True where both photos show the very same pixels there (see `same_pixels`).
    identical: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def identical_count(self) -> int:
        return int(np.count_nonzero(self.identical))

    def one_photograph(self, size: tuple[int, int]) -> bool:
        """Most of the agreement is the same pixels, spread over a good part of the first photo
        (`size`: its described width, height): the two files are one photograph (a copy, two crops
        of one frame), whatever animals they show. Identical pixels in one small patch are a stamp
        (a logo, a date imprint) on two different photographs, not one photograph."""
        if self.inliers < MIN_SAME_PHOTOGRAPH_INLIERS or 2 * self.identical_count < self.inliers:
            return False
        points = self.lines[self.identical, :2]
        spread = np.ptp(points[:, 0]) * np.ptp(points[:, 1])
        return bool(spread >= ONE_PHOTOGRAPH_AREA_FRACTION * size[0] * size[1])


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
    import cv2

    try:
        keypoints, descriptors = _sift().detectAndCompute(pixels, None)
    except cv2.error:
        # A photo OpenCV cannot describe is still catalogued, on its embedding alone.
        keypoints, descriptors = (), None
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

    # finprint describes photos in its own decode threads, one photo per thread; OpenCV's own
    # pool on top of that only oversubscribes the cores (measured: 56 ms per nyala photo with
    # it, see bench/README.md).
    cv2.setNumThreads(1)
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
    """`match` of one photo against several (its shortlist), reusing its RootSIFT descriptors.

    One small product per candidate: a single product over the whole stacked shortlist was
    measured slower (16 vs 10 ms for 20 nyala candidates), its 7 MB result spilling the cache."""
    if len(query) < 2:
        return [EMPTY_MATCH] * len(candidates)
    import cv2

    query_descriptors = query.root_sift()
    # OpenCV's single-threaded product, not numpy's: OpenBLAS threads spin while the decode
    # threads describe photos, and the index ran 1.7x slower end to end with them.
    return [
        _ratio_matches(
            query,
            candidate,
            # No third matrix (beta 0): OpenCV takes None, its stubs do not say so.
            cv2.gemm(query_descriptors, candidate.root_sift(), 1.0, None, 0.0, flags=cv2.GEMM_2_T),  # type: ignore[call-overload]
        )
        if len(candidate) >= 2
        else EMPTY_MATCH
        for candidate in candidates
    ]


def _ratio_matches(a: LocalFeatures, b: LocalFeatures, similarity: np.ndarray) -> PairMatch:
    best = similarity.argmax(axis=1)
    rows = np.arange(len(similarity))
    first = similarity[rows, best]
    # The runner-up: the best once the winner is pushed below every other score.
    similarity[rows, best] = -np.inf
    second = similarity.max(axis=1)
    # Unit vectors: distance = sqrt(2 - 2 * similarity); the ratio test compares distances.
    distance_first = np.sqrt(np.maximum(2.0 - 2.0 * first, 0.0))
    distance_second = np.sqrt(np.maximum(2.0 - 2.0 * second, 0.0))
    return geometric_check(a, b, np.flatnonzero(distance_first < RATIO * distance_second), best)


EMPTY_MATCH = PairMatch(0, 0, np.zeros((0, 4), np.float32))
# Fewer agreeing keypoints than this say too little to call two files one photograph.
MIN_SAME_PHOTOGRAPH_INLIERS = 8
# Identical pixels whose bounding box covers at least this share of a photo's area make it one
# photograph with the other; in a smaller patch they are a stamp. Measured on drawn fish: two
# crops of one frame 0.07-0.29 of the crop, a 60x30 px label stamped on two photos 0.00-0.01.
ONE_PHOTOGRAPH_AREA_FRACTION = 0.05


def same_pixels(
    a: LocalFeatures, b: LocalFeatures, rows: np.ndarray, cols: np.ndarray, scale_to_a: float
) -> np.ndarray:
    """Per inlier pair (`rows` of `a`, `cols` of `b`): True where the two photos hold the very same
    pixels. A least-median similarity fitted to the inliers maps `a` onto `b`; keypoints that land
    within SAME_PIXELS_RESIDUAL_PX (in `a`'s described pixels) with near-equal descriptors were
    found twice in one image, not on an animal seen twice: a body that moved, turned or bent, or
    another photograph's light and noise, moves its keypoints further and changes their
    descriptors."""
    import cv2

    if len(rows) < 3:
        return np.zeros(len(rows), dtype=bool)
    source = np.ascontiguousarray(a.points[rows], dtype=np.float32)
    target = np.ascontiguousarray(b.points[cols], dtype=np.float32)
    try:
        # LMEDS fits the majority exactly and ignores the rest: a partly identical pair (a frame's
        # static background beside a moving animal) keeps its identical part.
        transform, _ = cv2.estimateAffinePartial2D(source, target, method=cv2.LMEDS)
    except cv2.error:
        return np.zeros(len(rows), dtype=bool)
    if transform is None:
        return np.zeros(len(rows), dtype=bool)
    landed = source @ transform[:, :2].T + transform[:, 2]
    residual_px = np.linalg.norm(landed - target, axis=1) * scale_to_a
    descriptor_distance = np.linalg.norm(a.unit_descriptors()[rows] - b.unit_descriptors()[cols], axis=1)
    return np.asarray(
        (residual_px < SAME_PIXELS_RESIDUAL_PX) & (descriptor_distance < SAME_PIXELS_DESCRIPTOR_DISTANCE)
    )


def geometric_check(a: LocalFeatures, b: LocalFeatures, kept_rows: np.ndarray, best: np.ndarray) -> PairMatch:
    """The inliers of one similarity transform (RANSAC) among the tentative matches
    `kept_rows` of `a` -> `best[kept_rows]` of `b`, whichever detector found them."""
    kept_cols = best[kept_rows]
    # Many points of `a` matching one point of `b` are one piece of evidence, not several.
    _, unique = np.unique(kept_cols, return_index=True)
    kept_rows, kept_cols = kept_rows[unique], kept_cols[unique]
    tentative = len(kept_rows)
    if tentative < 3:
        return PairMatch(0, tentative, EMPTY_MATCH.lines)
    import cv2

    source = a.points[kept_rows]
    target = b.points[kept_cols]
    tolerance = RANSAC_TOLERANCE_FRACTION * max(b.size)
    cv2.setRNGSeed(RANSAC_SEED)
    try:
        transform, mask = cv2.estimateAffinePartial2D(
            source, target, method=cv2.RANSAC, ransacReprojThreshold=tolerance, maxIters=500, confidence=0.99
        )
    except cv2.error:
        return PairMatch(0, tentative, EMPTY_MATCH.lines)
    if transform is None or mask is None:
        return PairMatch(0, tentative, EMPTY_MATCH.lines)
    inlier = mask.ravel().astype(bool)
    lines = np.hstack([source[inlier], target[inlier]]).astype(np.float32)
    identical = np.zeros(int(inlier.sum()), dtype=bool)
    # Only a match with enough inliers can be one photograph: the test is skipped for the rest
    # (most candidates), which saves most of its 2-3 ms a 28-photo shortlist.
    if inlier.sum() >= MIN_SAME_PHOTOGRAPH_INLIERS:
        # The residual is measured in `a`'s pixels: b's are scaled back by the transform's scale.
        scale = float(np.hypot(transform[0, 0], transform[1, 0]))
        identical = same_pixels(a, b, kept_rows[inlier], kept_cols[inlier], 1.0 / max(scale, 1e-6))
    return PairMatch(int(inlier.sum()), tentative, lines, kept_rows[inlier], identical)


def distinctive_inliers(matches: list[PairMatch], owners: list[str]) -> list[int]:
    """Inliers per candidate, counting only the query's keypoints that agree with one individual
    (see `distinctive_masks`)."""
    return [int(mask.sum()) for mask in distinctive_masks(matches, owners)]


def distinctive_masks(matches: list[PairMatch], owners: list[str]) -> list[np.ndarray]:
    """Which inliers of each candidate's match count: the query's keypoints that agree with one
    individual only.

    A keypoint of the new photo that is an inlier with photos of two different individuals is on
    something they share (the same rock behind two animals photographed in one place, a frame,
    a label) rather than on the animal, so it is evidence for neither: a held-out nyala pair of
    two animals shot against one background reached 15 inliers that way."""
    individuals_of: dict[int, set[str]] = {}
    for agreement, owner in zip(matches, owners, strict=True):
        for keypoint in agreement.query_keypoints.tolist():
            individuals_of.setdefault(keypoint, set()).add(owner)
    return [
        np.asarray([len(individuals_of[k]) == 1 for k in agreement.query_keypoints.tolist()], dtype=bool)
        for agreement in matches
    ]


@dataclass(frozen=True)
class DecisiveLines:
    """The keypoint correspondences a match was decided on, kept with the sighting so that a
    report draws exactly those (not a new matching of the two photos)."""

    lines: np.ndarray  # (n, 4) float32: x_a, y_a, x_b, y_b in each photo's described pixels
    size: tuple[int, int]  # the new photo's described width, height
    matched_size: tuple[int, int]  # the matched photo's

    def to_bytes(self) -> bytes:
        header = np.asarray([*self.size, *self.matched_size], dtype="<i4").tobytes()
        return header + self.lines.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> DecisiveLines:
        width, height, matched_width, matched_height = (int(v) for v in np.frombuffer(blob[:16], dtype="<i4"))
        lines = np.frombuffer(blob[16:], dtype="<f4").reshape(-1, 4)
        return cls(lines, (width, height), (matched_width, matched_height))


@dataclass(frozen=True)
class Detector:
    """A way of finding and matching keypoints. Its name is what cached features are filed
    under: features of two detectors are never matched against each other."""

    kind: str  # a vocabulary.KeypointDetector: what a person chooses
    name: str  # the kind with the settings that change its keypoints
    # The long side, in pixels, that the photo's decode must keep for it.
    long_side_px: int
    describe: Callable[[Image.Image], LocalFeatures]
    match_many: Callable[[LocalFeatures, list[LocalFeatures]], list[PairMatch]]
    descriptor_type: str = "uint8"
    descriptor_dimensions: int = _DESCRIPTOR_BYTES

    def features_from_bytes(self, blob: bytes) -> LocalFeatures:
        """Keypoints this detector made, as the catalogue keeps them."""
        return LocalFeatures.from_bytes(blob, np.dtype(self.descriptor_type), self.descriptor_dimensions)


SIFT = Detector("sift", DETECTOR, FEATURE_LONG_SIDE_PX, describe, match_many)
