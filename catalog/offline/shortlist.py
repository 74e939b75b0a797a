"""Verify each labelled photo's embedding shortlist and score embedding, keypoints and fusion side by side."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from catalog.fusion import Fusion, LabelledPairs, fit
from catalog.identify import partition_key
from catalog.offline.labels import LabelledPhoto
from catalog.offline.metrics import pairwise_distances, retrieval_scores, roc_auc, roc_points
from catalog.verify import SIFT, Detector, LocalFeatures, distinctive_inliers
from catalog.vocabulary import Sides


@dataclass(frozen=True)
class Shortlists:
    """Every (query, candidate) pair of the shortlists, with both kinds of evidence, and what
    scoring them needs: each photo's identity and encounter, and all photo-to-photo distances."""

    labels: list[str]
    encounters: list[str]
    distances: np.ndarray  # photos x photos, for the embedding's own ranking
    query: np.ndarray  # row of the query photo
    candidate: np.ndarray  # row of the candidate photo
    distance: np.ndarray
    inliers: np.ndarray
    same: np.ndarray  # same individual
    match_seconds_per_query: float


def verify_shortlists(
    vectors: np.ndarray,
    photos: list[LabelledPhoto],
    features: list[LocalFeatures],
    sides: Sides,
    shortlist_k: int,
    *,
    detector: Detector = SIFT,
) -> Shortlists:
    """Each photo's `shortlist_k` nearest photos of other encounters and of its own catalogue
    partition (same crop, and same flank when `sides` is split), matched by `detector`'s
    keypoints (`features` must be its own)."""
    labels = [p.class_key(sides) for p in photos]
    encounters = [p.encounter for p in photos]
    distances = pairwise_distances(vectors.astype(np.float64))
    label_array, encounter_array = np.asarray(labels), np.asarray(encounters)
    partition_array = np.asarray([partition_key(p.side, p.crop, sides == Sides.SPLIT) for p in photos])
    queries: list[int] = []
    candidates: list[int] = []
    inliers: list[int] = []
    started = time.perf_counter()
    for q in range(len(labels)):
        eligible = np.flatnonzero(
            (encounter_array != encounter_array[q]) & (partition_array == partition_array[q])
        )
        nearest = eligible[np.argsort(distances[q, eligible], kind="stable")[:shortlist_k]]
        agreements = detector.match_many(features[q], [features[int(c)] for c in nearest])
        queries.extend([q] * len(nearest))
        candidates.extend(int(c) for c in nearest)
        # As identification counts them: keypoints agreeing with two individuals are not evidence.
        inliers.extend(distinctive_inliers(agreements, [labels[int(c)] for c in nearest]))
    seconds = time.perf_counter() - started
    query_rows, candidate_rows = np.asarray(queries, dtype=int), np.asarray(candidates, dtype=int)
    return Shortlists(
        labels=labels,
        encounters=encounters,
        distances=distances,
        query=query_rows,
        candidate=candidate_rows,
        distance=distances[query_rows, candidate_rows],
        inliers=np.asarray(inliers, dtype=np.float64),
        same=label_array[query_rows] == label_array[candidate_rows],
        match_seconds_per_query=seconds / max(1, len(labels)),
    )


@dataclass(frozen=True)
class MethodScores:
    """One way of deciding, scored on the same photos."""

    rank1: float
    mean_average_precision: float
    shortlist_auc: float  # ROC AUC over the shortlist pairs
    precision_at_threshold: float | None  # over shortlist pairs accepted at the decision threshold
    accepted_pairs: int | None
    # ROC over the shortlist pairs, and (false-accept, true-accept rate) at the decision threshold.
    roc_curve: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    operating_point: tuple[float, float] | None = None


def cross_fitted(
    pairs: Shortlists, distance_threshold: float, model_version: str, detector: str
) -> list[dict[str, MethodScores]]:
    """Score fusion without fitting it on the scored fish: the individuals are split in two halves,
    the fusion is fitted on one half's queries and scored on the other's, then the other way."""
    first_half = set(sorted(set(pairs.labels))[::2])
    in_first = np.asarray([label in first_half for label in pairs.labels])
    results = []
    for fitting in (in_first, ~in_first):
        fitting_pairs = fitting[pairs.query]
        fitting_evidence = LabelledPairs(
            pairs.distance[fitting_pairs], pairs.inliers[fitting_pairs], pairs.same[fitting_pairs]
        )
        fused = fit(fitting_evidence, distance_threshold, model_version, detector)
        results.append(compare_methods(pairs, distance_threshold, fused, np.flatnonzero(~fitting)))
    return results


def compare_methods(
    pairs: Shortlists,
    distance_threshold: float,
    fusion: Fusion | None,
    queries: np.ndarray | None = None,
) -> dict[str, MethodScores]:
    """Embedding-only, verification-only (shortlist re-ranked by inliers) and fused, side by side.

    `queries`: score only these photos as queries (for cross-fitting); all by default."""
    if queries is not None:
        asking = np.isin(pairs.query, queries)
        pairs = replace(
            pairs, query=pairs.query[asking], candidate=pairs.candidate[asking],
            distance=pairs.distance[asking], inliers=pairs.inliers[asking], same=pairs.same[asking],
        )  # fmt: skip
    label_array, encounter_array = np.asarray(pairs.labels), np.asarray(pairs.encounters)
    keys: dict[str, np.ndarray] = {
        "embedding": -pairs.distance,
        # Ties in inliers (often zero) fall back to the embedding's order.
        "verification": pairs.inliers - pairs.distance * 1e-3,
    }
    if fusion is not None:
        keys["fused"] = fusion.score(pairs.distance, pairs.inliers)
    results: dict[str, MethodScores] = {}
    for name, key in keys.items():
        ranked = pairs.distances.copy()
        # Shortlisted candidates come first, in the method's order; the rest keep the embedding's.
        ranked[pairs.query, pairs.candidate] = -1e6 - key
        retrieval = retrieval_scores(ranked, label_array, encounter_array, queries)
        accepted: np.ndarray | None = None
        if name == "embedding":
            accepted = pairs.distance < distance_threshold
        elif name == "fused" and fusion is not None:
            accepted = fusion.accepts(pairs.distance, pairs.inliers, distance_threshold)
        precision = None
        if accepted is not None and accepted.any():
            precision = float(np.mean(pairs.same[accepted]))
        operating_point = None
        if accepted is not None and pairs.same.any() and (~pairs.same).any():
            operating_point = (float(np.mean(accepted[~pairs.same])), float(np.mean(accepted[pairs.same])))
        results[name] = MethodScores(
            rank1=retrieval.rank1,
            mean_average_precision=retrieval.mean_average_precision,
            shortlist_auc=roc_auc(-key[pairs.same], -key[~pairs.same]),
            precision_at_threshold=precision,
            accepted_pairs=None if accepted is None else int(accepted.sum()),
            roc_curve=roc_points(-key[pairs.same], -key[~pairs.same]),
            operating_point=operating_point,
        )
    return results
