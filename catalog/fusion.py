"""One calibrated P(same individual) from an embedding distance and a keypoint inlier count.

A logistic model on (distance, log(1 + inliers)), fitted on labelled shortlist pairs and kept in
a JSON file beside the ONNX model (`<model>.verify.json`); plain numpy at run time. Beside it, the
embedding's reach: the distance past which keypoints may send a pair to review but never join it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalog.errors import FinprintError
from catalog.vocabulary import KeypointDetector

SIDECAR_SUFFIX = ".verify.json"
# Candidates per new photo that are verified: the embedding's k nearest catalogued photos.
DEFAULT_SHORTLIST_K = 20
# The share of a set's same-animal shortlist pairs that lie within the keypoints' reach.
REACH_QUANTILE = 0.99
# A set with fewer same-animal pairs than this gives no reach of its own (its 99th percentile
# would be its one or two nearest pairs); it still counts in the pooled reach when no set has enough.
MIN_REACH_PAIRS = 20
# The narrowest review band around the fused decision point, in log-odds, at the default 10%
# review band: odds within a factor of 1.65 of the decision point are for a person to check.
MIN_REVIEW_LOG_ODDS = 0.5


def _inputs(distance: np.ndarray | float, inliers: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The logistic model's two inputs: the distance, and log(1 + inliers)."""
    return np.asarray(distance, dtype=np.float64), np.log1p(np.asarray(inliers, dtype=np.float64))


def sidecar_path(model_path: Path, detector_kind: str = KeypointDetector.SIFT) -> Path:
    """Where a model's fusion parameters for one keypoint detector live: beside it, same stem
    (`<model>.verify.json` for SIFT, as finprint has always written it; `<model>.verify-xfeat.json`
    for XFeat)."""
    suffix = SIDECAR_SUFFIX if detector_kind == KeypointDetector.SIFT else f".verify-{detector_kind}.json"
    return model_path.with_name(model_path.stem + suffix)


@dataclass(frozen=True)
class Fusion:
    """score = bias + distance_weight * distance + inlier_weight * log(1 + inliers); P = sigmoid(score)."""

    model_version: str
    detector: str
    distance_weight: float
    inlier_weight: float
    bias: float
    # Decide "same individual" above this score (see `fit` for how it is chosen).
    score_threshold: float
    shortlist_k: int = DEFAULT_SHORTLIST_K
    fitted_on: dict[str, Any] = field(default_factory=dict)
    # The farthest embedding distance at which keypoints may join a pair automatically (see
    # `fit`). None in files fitted before it existed: `reach` then allows no further than the
    # card's threshold, so keypoints confirm what the embedding accepts and never extend it.
    keypoint_reach: float | None = None

    def reach(self, distance_threshold: float) -> float:
        """The distance past which a pair can go to review at most, whatever its keypoints say."""
        return (
            distance_threshold
            if self.keypoint_reach is None
            else max(self.keypoint_reach, distance_threshold)
        )

    def score(self, distance: np.ndarray | float, inliers: np.ndarray | float) -> np.ndarray:
        """The log-odds of "same individual" for each (distance, inliers) pair."""
        distances, evidence = _inputs(distance, inliers)
        return np.asarray(self.bias + self.distance_weight * distances + self.inlier_weight * evidence)

    def accepts(
        self, distance: np.ndarray | float, inliers: np.ndarray | float, distance_threshold: float
    ) -> np.ndarray:
        """Whether each pair would be joined automatically: a score over the decision point,
        within the keypoints' reach."""
        distances = np.asarray(distance, dtype=np.float64)
        return np.asarray(
            (self.score(distances, inliers) > self.score_threshold)
            & (distances < self.reach(distance_threshold))
        )

    def probability(self, distance: np.ndarray | float, inliers: np.ndarray | float) -> np.ndarray:
        """P(same individual), with the classes weighted equally in the fit (a balanced prior)."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.score(distance, inliers))))

    def review_margin(self, distance_threshold: float, review_band_fraction: float) -> float:
        """The review band in score units: the distance band's width times the distance weight, so
        a pair without keypoint evidence is doubtful over the same distances as without fusion;
        but never narrower than MIN_REVIEW_LOG_ODDS, since a weak distance weight would shrink it
        to nothing (a held-out nyala pair of two animals shot against one background scored
        0.07 above the decision point, inside this floor, outside the distance-derived band)."""
        derived = abs(self.distance_weight) * distance_threshold * review_band_fraction
        return max(derived, MIN_REVIEW_LOG_ODDS * review_band_fraction / 0.1)

    @property
    def threshold_probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.score_threshold))

    def save(self, path: Path) -> None:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Fusion:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise FinprintError(
                f"{path}: not a readable verification file ({exc}). Delete it or refit it with "
                "`finprint fit-verification`."
            ) from exc


def load_for_model(
    model_path: Path, model_version: str, detector: str, detector_kind: str = KeypointDetector.SIFT
) -> Fusion | None:
    """The fusion fitted for this model and detector, or None when there is none that fits."""
    path = sidecar_path(model_path, detector_kind)
    if not path.is_file():
        return None
    fusion = Fusion.load(path)
    if fusion.model_version != model_version or fusion.detector != detector:
        return None
    return fusion


def _logistic(features: np.ndarray, same: np.ndarray, weights: np.ndarray, l2_penalty: float) -> np.ndarray:
    """Weighted logistic regression by Newton's method; the first column (the bias) unpenalised."""
    beta = np.zeros(features.shape[1])
    penalty = np.diag([1e-9] + [1.0] * (features.shape[1] - 1))
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(features @ beta)))
        gradient = features.T @ (weights * (p - same)) + l2_penalty * np.r_[0.0, beta[1:]]
        hessian = (features * (weights * p * (1 - p))[:, None]).T @ features + l2_penalty * penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta


@dataclass(frozen=True)
class LabelledPairs:
    """Shortlist pairs with their evidence and the truth: what the fusion is fitted on."""

    distances: np.ndarray
    inliers: np.ndarray
    same: np.ndarray  # same individual
    # The data set or archive of each pair (None: one group).
    groups: np.ndarray | None = None


def fit(
    pairs: LabelledPairs,
    distance_threshold: float,
    model_version: str,
    detector: str,
    *,
    shortlist_k: int = DEFAULT_SHORTLIST_K,
    l2_penalty: float = 1e-3,
    slack_rate: float = 2e-3,
) -> Fusion:
    """Fit the logistic model on shortlist pairs, the keypoints' reach, and the decision score.

    The reach is an explicit gate, not a weight: within shortlists the distance carries too little
    signal for a logistic weight (it came out positive and was dropped), so a dozen inliers on a
    second animal, a board or a logo decided alone, at any distance. Per group, REACH_QUANTILE of
    the same-animal pairs lie within some distance; the reach is the smallest of those, so that no
    set's look-alikes can be joined where any set's own re-sightings do not reach (a set where the
    embedding is weak, whose re-sightings lie far apart, would otherwise open it for all).

    The decision score is the lowest at which, in every group of pairs (a data set, an archive),
    no more different-individual pairs are accepted than the embedding alone accepts there at
    the card's `distance_threshold` (or `slack_rate` of the group's different pairs, if more):
    the fused rule may find more re-sightings, but on the fitting pairs it never merges more. Per
    group, because one set where the embedding is weak must not buy false matches in the others.
    """
    same, groups = np.asarray(pairs.same, dtype=bool), pairs.groups
    if same.all() or not same.any():
        raise FinprintError(
            "fitting the verification needs both same-individual and different-individual pairs: "
            "give labelled photos of at least two individuals with two or more photos each."
        )
    distances, evidence = _inputs(pairs.distances, pairs.inliers)
    features = np.column_stack([np.ones_like(distances), distances, evidence])
    names, group_of = _group_codes(groups, len(same))
    # Balanced classes within each group and groups weighted equally: P(same) must depend neither
    # on how many pairs of each kind the data holds nor on which set brought the most photos.
    weights = np.zeros(len(same))
    group_count = len(np.unique(group_of))
    for group in np.unique(group_of):
        for kind in (same, ~same):
            members = kind & (group_of == group)
            if members.any():
                weights[members] = 0.5 / members.sum() / group_count
    beta = _logistic(features, same, weights, l2_penalty)
    if beta[1] > 0:
        # Within shortlists (every candidate is already among a photo's nearest) the distance can
        # carry no signal, and noise then gives it a positive weight: a farther photo would look
        # more alike. P(same) never rises with distance: fit without it instead.
        beta = np.insert(_logistic(features[:, [0, 2]], same, weights, l2_penalty), 1, 0.0)
    scores = features @ beta
    same_reach = _same_pair_reaches(distances, same, group_of)
    reach = max(keypoint_reach(same_reach, distances[same]), distance_threshold)
    # The decision score is chosen on every pair, the far ones included, as before the reach: the
    # reach only ever takes matches away. (Chosen on the pairs within it, the score fell from 17
    # agreeing keypoints to 5, since the far look-alikes that set it no longer counted.)
    score_threshold = -np.inf
    allowed = 0
    for group in np.unique(group_of):
        negative = ~same & (group_of == group)
        if not negative.any():
            continue
        negative_scores = np.sort(scores[negative])[::-1]
        embedding_accepts = int(np.sum(distances[negative] < distance_threshold))
        allowed_here = max(embedding_accepts, int(slack_rate * len(negative_scores)))
        allowed += embedding_accepts
        # Accept scores strictly above the (allowed+1)-th highest negative score of the group.
        if allowed_here < len(negative_scores):
            score_threshold = max(score_threshold, float(negative_scores[allowed_here]))
    if not np.isfinite(score_threshold):
        # No group has a different pair to keep out: accept every pair within the reach.
        score_threshold = float(np.nextafter(scores.min(), -np.inf))
    accepted = (scores > score_threshold) & (distances < reach)
    return Fusion(
        model_version=model_version,
        detector=detector,
        distance_weight=float(beta[1]),
        inlier_weight=float(beta[2]),
        bias=float(beta[0]),
        score_threshold=score_threshold,
        shortlist_k=shortlist_k,
        fitted_on={
            "same_pairs": int(same.sum()),
            "different_pairs": int((~same).sum()),
            "different_pairs_accepted_by_embedding": allowed,
            "different_pairs_accepted_fused": int(np.sum(accepted & ~same)),
            "same_pairs_accepted_by_embedding": int(np.sum(distances[same] < distance_threshold)),
            "same_pairs_accepted_fused": int(np.sum(accepted & same)),
            "per_set": per_group_figures(
                same,
                group_of,
                names,
                same_reach,
                {
                    "by_embedding": distances < distance_threshold,
                    "fused_without_reach": scores > score_threshold,
                    "fused": accepted,
                },
            ),
        },
        keypoint_reach=float(reach),
    )


def _group_codes(groups: np.ndarray | None, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The groups' names and each pair's group as an index into them (one group "0" when none)."""
    if groups is None:
        return np.asarray(["0"]), np.zeros(count, dtype=int)
    names, codes = np.unique(groups, return_inverse=True)
    return names, codes


def _same_pair_reaches(
    distances: np.ndarray, same: np.ndarray, group_of: np.ndarray
) -> dict[int, tuple[int, float]]:
    """Per group (by index): how many same-animal pairs it has, and the distance REACH_QUANTILE of
    them lie within."""
    return {
        int(group): (int(members.sum()), float(np.quantile(distances[members], REACH_QUANTILE)))
        for group in np.unique(group_of)
        if (members := same & (group_of == group)).any()
    }


def keypoint_reach(same_reach: dict[int, tuple[int, float]], same_distances: np.ndarray) -> float:
    """The smallest reach of the groups with MIN_REACH_PAIRS same-animal pairs (all same-animal
    pairs pooled when no group has that many)."""
    reaches = [reach for count, reach in same_reach.values() if count >= MIN_REACH_PAIRS]
    return min(reaches) if reaches else float(np.quantile(same_distances, REACH_QUANTILE))


def per_group_figures(
    same: np.ndarray,
    group_of: np.ndarray,
    names: np.ndarray,
    same_reach: dict[int, tuple[int, float]],
    accepted_by: dict[str, np.ndarray],
) -> dict[str, dict[str, int | float]]:
    """Per group, what the fit does to its pairs: how many same and different pairs each rule in
    `accepted_by` (the embedding alone, the fused score without the reach, within it) accepts;
    and the distance REACH_QUANTILE of its same-animal pairs lie within."""
    figures: dict[str, dict[str, int | float]] = {}
    for group, name in enumerate(names):
        here = group_of == group
        row: dict[str, int | float] = {}
        for kind, members in (("same", here & same), ("different", here & ~same)):
            row[f"{kind}_pairs"] = int(members.sum())
            for rule, accepted in accepted_by.items():
                row[f"{kind}_accepted_{rule}"] = int(np.sum(members & accepted))
        if group in same_reach:
            row["same_pairs_reach_q99"] = round(same_reach[group][1], 4)
        figures[str(name)] = row
    return dict(sorted(figures.items()))
