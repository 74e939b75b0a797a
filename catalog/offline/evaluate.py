"""Score an ONNX model on labelled photos of individuals (runtime only: onnxruntime and numpy)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

from catalog import fusion as fusion_module
from catalog import verify
from catalog.embed import Embedder
from catalog.errors import TrainingDataError
from catalog.modelcard import InputSpec
from catalog.offline.labels import (
    LabelledPhoto,
    read_labelled,
    read_metadata,
    refuse_survey_archive,
    split_photos,
)
from catalog.offline.metrics import (
    OpenSetScores,
    ReidMetrics,
    open_set_scores,
    pairwise_distances,
    reid_metrics,
)
from catalog.offline.shortlist import MethodScores, compare_methods, verify_shortlists
from catalog.preprocess import load_image, to_tensor
from catalog.rerank import rerank as rerank_distances

# Photos per inference batch when scoring.
_BATCH_SIZE = 64


@dataclass(frozen=True)
class VerificationResult:
    """Embedding-only, verification-only and fused decisions on the same shortlists, for one
    keypoint detector."""

    shortlist_k: int
    methods: dict[str, MethodScores]
    # Added CPU time per query photo: describing it once, and matching its shortlist.
    describe_ms_per_photo: float
    match_ms_per_query: float
    fusion_fitted: bool
    detector: str = "sift"


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model on one labelled set."""

    model_version: str
    card_threshold: float
    photos: int
    unreadable: list[str]
    metrics: ReidMetrics
    # P(same individual) at the card's threshold, from the card's calibration (balanced prior).
    probability_at_threshold: float | None
    # With --split open or time: the test photos against a gallery of the rest, at the threshold.
    open_set: OpenSetScores | None = None
    # One per keypoint detector scored, on the same shortlists (the embedding's nearest).
    verifications: list[VerificationResult] = field(default_factory=list)
    # With rerank (closed set only): the same queries ranked by catalog.rerank's distance.
    reranked: ReidMetrics | None = None


@dataclass(frozen=True)
class Holdout:
    """Score a test part against a gallery of the rest instead of every photo against all
    (`split` as labels.split_photos takes it: disjoint, open or time)."""

    split: str
    split_date: date | None = None
    test_fraction: float = 0.3
    seed: int = 0


@dataclass(frozen=True)
class Shortlists:
    """Verify each photo's `k` nearest by the keypoints of each of `detectors` (the first also
    describes photos during the embedding's decode)."""

    k: int = 20
    detectors: tuple[verify.Detector, ...] = (verify.SIFT,)


def evaluate(
    model_path: Path,
    data_dir: Path | None,
    *,
    crop: str | None = None,
    metadata: Path | None = None,
    root: Path | None = None,
    holdout: Holdout | None = None,
    shortlists: Shortlists | None = None,
    rerank: bool = False,
) -> Evaluation:
    """Embed labelled photos (a folder, or a metadata table) and score retrieval and verification.

    Without a `holdout` every photo is a query against all others (closed set). With an `open` or
    `time` one, the test part is also scored as the catalogue would see it: against a gallery of
    the rest, each photo is "fish X" or "a new fish" at the card's threshold.

    With `shortlists` (and OpenCV installed) each photo's k nearest are also verified by each
    detector's keypoints, and embedding-only, verification-only and fused decisions are
    compared. With `rerank`, the closed set is also scored by k-reciprocal re-ranked distances."""
    embedder = Embedder(model_path)
    card = embedder.card
    photos = read_metadata(metadata, root, crop) if metadata else read_labelled(_required(data_dir), crop)
    if not metadata and data_dir is not None:
        refuse_survey_archive(photos, data_dir)
    # Shortlists are verified on the closed set only: every photo against all others.
    k = shortlists.k if shortlists and verify.available() and holdout is None else 0
    detectors = shortlists.detectors if shortlists else ()
    vectors, kept, unreadable, features, describe_seconds = embed_labelled(
        embedder, photos, _BATCH_SIZE, detectors[0] if k else None
    )
    labels = [p.class_key(card.sides) for p in kept]
    open_set = None
    verifications = []
    for detector in detectors if k else ():
        if detector is not detectors[0]:
            features, describe_seconds = describe_labelled(kept, card.input, detector)
        fusion = fusion_module.load_for_model(model_path, card.model_version, detector.name, detector.kind)
        pairs = verify_shortlists(vectors, kept, features, card.sides, k, detector=detector)
        verifications.append(
            VerificationResult(
                k,
                compare_methods(pairs, card.threshold, fusion),
                1000 * describe_seconds / max(1, len(kept)),
                1000 * pairs.match_seconds_per_query,
                fusion is not None,
                detector.kind,
            )
        )
    reranked = None
    if holdout is None:
        encounters = [p.encounter for p in kept]
        metrics = reid_metrics(vectors, labels, encounters, threshold=card.threshold)
        if rerank:
            # No threshold: re-ranked distances are on another scale than the card's.
            distances = rerank_distances(pairwise_distances(vectors.astype(np.float64)))
            reranked = reid_metrics(vectors, labels, encounters, distances=distances)
    else:
        split = holdout.split
        gallery, test = split_photos(kept, split, holdout.test_fraction, holdout.seed, holdout.split_date)
        index_of = {id(p): i for i, p in enumerate(kept)}
        test_rows = [index_of[id(p)] for p in test]
        gallery_rows = [index_of[id(p)] for p in gallery]
        if not test_rows or not gallery_rows:
            raise TrainingDataError(
                f"--split {split} left an empty side: {len(gallery_rows)} gallery, "
                f"{len(test_rows)} test photos. Check --split-date or the data."
            )
        metrics = reid_metrics(
            vectors[test_rows],
            [labels[i] for i in test_rows],
            [kept[i].encounter for i in test_rows],
            threshold=card.threshold,
        )
        if split != "disjoint":
            open_set = open_set_scores(
                vectors[gallery_rows], [labels[i] for i in gallery_rows],
                vectors[test_rows], [labels[i] for i in test_rows], card.threshold,
            )  # fmt: skip
    return Evaluation(
        card.model_version,
        card.threshold,
        len(kept),
        unreadable,
        metrics,
        card.match_probability(card.threshold),
        open_set,
        verifications,
        reranked,
    )


def embed_labelled(
    embedder: Embedder,
    photos: list[LabelledPhoto],
    batch_size: int,
    detector: verify.Detector | None = None,
) -> tuple[np.ndarray, list[LabelledPhoto], list[str], list[verify.LocalFeatures], float]:
    """Embed every readable photo; with a `detector`, describe its keypoints from the same decode."""
    spec = embedder.card.input
    tensors, kept, unreadable = [], [], []
    features: list[verify.LocalFeatures] = []
    describe_seconds = 0.0
    for photo in photos:
        try:
            image = load_image(photo.path, spec, photo.bbox, detector.long_side_px if detector else 0)
            tensors.append(to_tensor(image, spec))
        except (OSError, SyntaxError, ValueError):
            unreadable.append(str(photo.path))
            continue
        kept.append(photo)
        if detector is not None:
            describe_seconds += _described_into(features, detector, image)
    if not tensors:
        example = f" (e.g. {unreadable[0]})" if unreadable else ""
        raise TrainingDataError(
            f"none of the {len(photos)} labelled photos could be read{example}. "
            "Check that the folder holds image files finprint can decode."
        )
    vectors = np.concatenate(
        [embedder.embed(np.stack(tensors[i : i + batch_size])) for i in range(0, len(tensors), batch_size)]
    )
    return vectors, kept, unreadable, features, describe_seconds


def describe_labelled(
    photos: list[LabelledPhoto], spec: InputSpec, detector: verify.Detector
) -> tuple[list[verify.LocalFeatures], float]:
    """Describe photos that `embed_labelled` already read (so all of them are readable) with
    another detector; returns the features and the seconds spent describing."""
    features: list[verify.LocalFeatures] = []
    seconds = 0.0
    for photo in photos:
        image = load_image(photo.path, spec, photo.bbox, detector.long_side_px)
        seconds += _described_into(features, detector, image)
    return features, seconds


def _described_into(
    features: list[verify.LocalFeatures], detector: verify.Detector, image: Image.Image
) -> float:
    """Append the image's keypoints to `features`; returns the seconds describing took."""
    tick = time.perf_counter()
    features.append(detector.describe(image))
    return time.perf_counter() - tick


def _required(data_dir: Path | None) -> Path:
    if data_dir is None:
        raise TrainingDataError("give a folder of labelled photos, or --metadata TABLE.csv.")
    return data_dir
