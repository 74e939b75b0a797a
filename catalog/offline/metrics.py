"""Re-identification and clustering metrics in plain numpy (runtime-safe, no torch)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

SEED_THRESHOLDS = tuple(round(0.3 + 0.2 * i, 1) for i in range(14))  # 0.3 .. 2.9, as the seed study


def pairwise_distances(vectors: np.ndarray) -> np.ndarray:
    squared = np.sum(vectors**2, axis=1)
    d2 = squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T
    distances: np.ndarray = np.sqrt(np.maximum(d2, 0.0))
    return distances


@dataclass(frozen=True)
class PairTable:
    """The seed study's table: accuracy on same-fish and different-fish pairs per threshold."""

    thresholds: tuple[float, ...]
    same_accuracy: tuple[float, ...]
    different_accuracy: tuple[float, ...]
    total_accuracy: tuple[float, ...]


@dataclass(frozen=True)
class ReidMetrics:
    """Closed-set retrieval and verification metrics on held-out individuals."""

    roc_auc: float
    rank1: float
    rank5: float
    mean_average_precision: float
    tar_at_far_1pct: float
    tar_at_far_01pct: float
    best_balanced_accuracy: float
    best_balanced_threshold: float
    pair_table: PairTable
    n_queries: int
    n_individuals: int
    # ROC as (false-accept rates, true-accept rates), at most ~150 points, for plots.
    roc_curve: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    # (false-accept rate, true-accept rate) at the decision threshold, when one was given.
    operating_point: tuple[float, float] | None = None
    # 95% intervals of rank-1 and mAP over resampled identities (bootstrap_interval).
    rank1_interval: tuple[float, float] | None = None
    map_interval: tuple[float, float] | None = None


def _pair_masks(labels: np.ndarray, encounters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    same = labels[:, None] == labels[None, :]
    same_encounter = encounters[:, None] == encounters[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    # Photos of one encounter are not counted as matches of each other: too easy.
    positive = same & ~same_encounter & upper
    negative = ~same & upper
    return positive, negative


def roc_auc(positive_distances: np.ndarray, negative_distances: np.ndarray) -> float:
    """P(a same-fish pair is closer than a different-fish pair), ties counted half."""
    if len(positive_distances) == 0 or len(negative_distances) == 0:
        return float("nan")
    scores = np.concatenate([-positive_distances, -negative_distances])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(average, counts)
    n_pos = len(positive_distances)
    n_neg = len(negative_distances)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_points(
    positive: np.ndarray, negative: np.ndarray, count: int = 100
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """False- and true-accept rates at `count` distance thresholds spanning both distributions,
    and at `count // 2` more spread over the low false-accept rates a log axis shows."""
    if len(positive) == 0 or len(negative) == 0:
        return ((), ())
    thresholds = np.unique(
        np.concatenate(
            [
                np.quantile(np.concatenate([positive, negative]), np.linspace(0, 1, count)),
                np.quantile(negative, np.logspace(-6, 0, count // 2)),
            ]
        )
    )
    far = tuple(float(np.mean(negative < t)) for t in thresholds)
    tar = tuple(float(np.mean(positive < t)) for t in thresholds)
    return (0.0, *far, 1.0), (0.0, *tar, 1.0)


def threshold_at_false_match_rate(negative_distances: np.ndarray, false_match_rate: float) -> float:
    """The largest distance at which at most `false_match_rate` of different-fish pairs match."""
    ordered = np.sort(negative_distances)
    allowed = int(np.floor(false_match_rate * len(ordered)))
    return float(ordered[allowed]) if allowed < len(ordered) else float(ordered[-1])


MIN_THRESHOLD = 1e-4  # the card keeps 4 decimals


@dataclass(frozen=True)
class SetOperatingPoint:
    """One validation set at the card's threshold: its own safe threshold, and what the chosen one
    does to it."""

    name: str
    own_threshold: float
    own_true_match_rate: float
    decides: bool
    false_match_rate: float
    true_match_rate: float
    negative_pairs: int
    positive_pairs: int


def threshold_safe_per_set(
    groups: dict[str, tuple[np.ndarray, np.ndarray]],
    false_match_rate: float,
    min_true_match_rate: float,
    unserved_false_match_rate: float | None = None,
) -> tuple[float, list[SetOperatingPoint]]:
    """The strictest of each set's own `false_match_rate` thresholds, among the sets that the
    embedding can serve at that rate (at least `min_true_match_rate` of their same-individual pairs
    match there), and no higher than where any other set's pairs match at
    `unserved_false_match_rate`; `groups` maps a set to its (positive, negative) pair distances,
    pairs within it.

    Pooling all sets' pairs lets the set with the most look-alike pairs decide for all, and the
    cross-set pairs (trivially different) dilute the rate; per set, every set is held to the rate.
    A set whose own safe threshold matches almost none of its re-sightings is left to keypoint
    verification: letting it decide would make the catalogue recognise nothing anywhere. But it is
    still held to the looser rate: without that bound a kind of animal the embedding does not tell
    apart could see a third of its different-animal pairs matched by the embedding alone."""
    if not groups:
        raise ValueError("no validation pairs to choose a threshold from")
    own: dict[str, tuple[float, float]] = {}
    for name, (positive, negative) in groups.items():
        threshold = threshold_at_false_match_rate(negative, false_match_rate) if len(negative) else np.inf
        recall = float(np.mean(positive < threshold)) if len(positive) else 0.0
        own[name] = (float(threshold), recall)
    deciding = {name for name, (_, recall) in own.items() if recall >= min_true_match_rate}
    finite = [own[name][0] for name in (deciding or set(own)) if np.isfinite(own[name][0])]
    # A collapsed embedding can put every pair at distance 0; the card needs a positive distance,
    # and the smallest one still matches nothing but identical vectors.
    bounds = [
        threshold_at_false_match_rate(negative, unserved_false_match_rate)
        for name, (_, negative) in groups.items()
        if unserved_false_match_rate is not None and name not in deciding and len(negative)
    ]
    chosen = max(min(finite + bounds), MIN_THRESHOLD) if finite or bounds else 1.0
    points = []
    for name, (positive, negative) in sorted(groups.items()):
        points.append(
            SetOperatingPoint(
                name=name,
                own_threshold=own[name][0],
                own_true_match_rate=own[name][1],
                decides=name in deciding,
                false_match_rate=float(np.mean(negative < chosen)) if len(negative) else 0.0,
                true_match_rate=float(np.mean(positive < chosen)) if len(positive) else 0.0,
                negative_pairs=len(negative),
                positive_pairs=len(positive),
            )
        )
    return chosen, points


def pair_distances_by_group(
    vectors: np.ndarray, labels: list[str], encounters: list[str], groups: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(positive, negative) pair distances within each group, a photo's own encounter excluded."""
    label_array, encounter_array, group_array = np.asarray(labels), np.asarray(encounters), np.asarray(groups)
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in sorted(set(groups)):
        rows = np.flatnonzero(group_array == name)
        distances = pairwise_distances(vectors[rows].astype(np.float64))
        positive, negative = _pair_masks(label_array[rows], encounter_array[rows])
        result[name] = (distances[positive], distances[negative])
    return result


def reid_metrics(
    vectors: np.ndarray,
    labels: list[str],
    encounters: list[str],
    seed: int = 0,
    threshold: float | None = None,
    *,
    distances: np.ndarray | None = None,
) -> ReidMetrics:
    """Leave-one-out retrieval over the given photos and pair verification, seed-study style;
    with `threshold`, the ROC's operating point at it (reid_metrics_by_query)."""
    return reid_metrics_by_query(vectors, labels, encounters, seed, threshold, distances=distances)[0]


def reid_metrics_by_query(
    vectors: np.ndarray,
    labels: list[str],
    encounters: list[str],
    seed: int = 0,
    threshold: float | None = None,
    *,
    distances: np.ndarray | None = None,
) -> tuple[ReidMetrics, QueryScores]:
    """reid_metrics, and each query's own scores behind it (to compare two models on the same
    queries, paired_bootstrap). `distances`: the photos' distance matrix when it is not the
    vectors' own (re-ranked, say)."""
    label_array = np.asarray(labels)
    encounter_array = np.asarray(encounters)
    if distances is None:
        distances = pairwise_distances(vectors.astype(np.float64))
    positive, negative = _pair_masks(label_array, encounter_array)
    pos_d = distances[positive]
    neg_d = distances[negative]
    # Balanced pairs as in the seed study: as many different-fish pairs as same-fish pairs.
    rng = np.random.default_rng(seed)
    balanced_neg = rng.choice(neg_d, size=min(len(neg_d), len(pos_d)), replace=False) if len(pos_d) else neg_d
    same_acc, diff_acc, total_acc = [], [], []
    for t in SEED_THRESHOLDS:
        s = float(np.mean(pos_d < t)) if len(pos_d) else float("nan")
        d = float(np.mean(balanced_neg >= t)) if len(balanced_neg) else float("nan")
        same_acc.append(s)
        diff_acc.append(d)
        total_acc.append((s + d) / 2)
    # Without pairs of both kinds there is no balanced accuracy to maximise (a test set whose
    # every individual was photographed in one encounter has no same-individual pair).
    candidates = (
        np.unique(np.concatenate([pos_d, balanced_neg])) if len(pos_d) and len(neg_d) else np.zeros(0)
    )
    best_acc, best_t = 0.0, 0.0
    for t in candidates[:: max(1, len(candidates) // 2000)]:
        acc = (np.mean(pos_d < t) + np.mean(balanced_neg >= t)) / 2
        if acc > best_acc:
            best_acc, best_t = float(acc), float(t)
    per_query = query_scores(distances, label_array, encounter_array)
    retrieval = retrieval_means(per_query)
    queried = label_array[per_query.rows]

    def tar(far: float) -> float:
        if len(neg_d) == 0 or len(pos_d) == 0:
            return float("nan")
        return float(np.mean(pos_d < threshold_at_false_match_rate(neg_d, far)))

    operating_point = None
    if threshold is not None and len(pos_d) and len(neg_d):
        operating_point = (float(np.mean(neg_d < threshold)), float(np.mean(pos_d < threshold)))
    metrics = ReidMetrics(
        roc_curve=roc_points(pos_d, neg_d),
        operating_point=operating_point,
        roc_auc=roc_auc(pos_d, neg_d),
        rank1=retrieval.rank1,
        rank5=retrieval.rank5,
        mean_average_precision=retrieval.mean_average_precision,
        tar_at_far_1pct=tar(0.01),
        tar_at_far_01pct=tar(0.001),
        best_balanced_accuracy=best_acc,
        best_balanced_threshold=best_t,
        pair_table=PairTable(SEED_THRESHOLDS, tuple(same_acc), tuple(diff_acc), tuple(total_acc)),
        n_queries=retrieval.queries,
        n_individuals=len(set(labels)),
        rank1_interval=bootstrap_interval(per_query.rank1, queried) if len(queried) else None,
        map_interval=bootstrap_interval(per_query.average_precision, queried) if len(queried) else None,
    )
    return metrics, per_query


@dataclass(frozen=True)
class RetrievalScores:
    """Leave-one-out retrieval: is the nearest photo the same individual, and how early are they all."""

    rank1: float
    rank5: float
    mean_average_precision: float
    queries: int


@dataclass(frozen=True)
class QueryScores:
    """Leave-one-out retrieval, one entry per query that has a match: its row, whether the nearest
    photo is right, whether one of the first five is, and its average precision."""

    rows: np.ndarray
    rank1: np.ndarray
    rank5: np.ndarray
    average_precision: np.ndarray


def query_scores(
    distances: np.ndarray, labels: np.ndarray, encounters: np.ndarray, queries: np.ndarray | None = None
) -> QueryScores:
    """Rank every other photo by `distances` (lower first; any ordering key works), leaving out the
    query's own encounter; queries without another photo of their individual are skipped.
    `queries`: only these rows ask (default: every photo)."""
    rows, rank1, rank5, aps = [], [], [], []
    for q in range(len(labels)) if queries is None else queries.tolist():
        gallery = encounters != encounters[q]
        relevant = (labels == labels[q]) & gallery
        if not relevant.any():
            continue
        order = np.argsort(distances[q][gallery], kind="stable")
        hits = relevant[gallery][order]
        rows.append(q)
        rank1.append(bool(hits[0]))
        rank5.append(bool(hits[:5].any()))
        hit_positions = np.flatnonzero(hits) + 1
        aps.append(float(np.mean(np.arange(1, len(hit_positions) + 1) / hit_positions)))
    return QueryScores(
        np.asarray(rows, dtype=np.int64),
        np.asarray(rank1, dtype=bool),
        np.asarray(rank5, dtype=bool),
        np.asarray(aps, dtype=np.float64),
    )


def retrieval_scores(
    distances: np.ndarray, labels: np.ndarray, encounters: np.ndarray, queries: np.ndarray | None = None
) -> RetrievalScores:
    """The means of `query_scores` (NaN when no query has a match)."""
    return retrieval_means(query_scores(distances, labels, encounters, queries))


def retrieval_means(scores: QueryScores) -> RetrievalScores:
    """Rank-1, rank-5 and mAP over the queries (NaN when no query has a match)."""
    if not len(scores.rows):
        return RetrievalScores(float("nan"), float("nan"), float("nan"), 0)
    return RetrievalScores(
        float(np.mean(scores.rank1)),
        float(np.mean(scores.rank5)),
        float(np.mean(scores.average_precision)),
        len(scores.rows),
    )


def bootstrap_interval(
    values: np.ndarray, groups: np.ndarray, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The 95% interval of the mean of per-query `values`, resampling whole `groups` (animals) with
    replacement: one animal's photos are not independent queries, and a slice of 4 animals must
    not look as certain as 400 photos would."""
    names, group_of = np.unique(groups, return_inverse=True)
    per_group = np.bincount(group_of, weights=np.asarray(values, dtype=np.float64), minlength=len(names))
    queries_per_group = np.bincount(group_of, minlength=len(names)).astype(np.float64)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(names), size=(draws, len(names)))
    means = per_group[picked].sum(axis=1) / queries_per_group[picked].sum(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def paired_bootstrap(
    first: np.ndarray, second: np.ndarray, groups: np.ndarray, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The difference of means `first - second` (per-query values of two models on the same
    queries) and its 95% interval over resampled `groups` (bootstrap_interval)."""
    difference = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    return (float(difference.mean()), *bootstrap_interval(difference, groups, draws, seed))


@dataclass(frozen=True)
class ClusteringScores:
    """How well found individuals match the true ones."""

    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_f1: float
    true_individuals: int
    found_individuals: int
    wrong_merges: int  # found individuals holding photos of more than one animal
    found_pairs: int  # pairs of photos put in one found individual: precision's denominator


def clustering_scores(
    truth: list[str], found: list[str], animals: list[str] | None = None
) -> ClusteringScores:
    """Pairwise and B-cubed scores of a clustering `found` against `truth`, item by item.

    `truth` is what the catalogue should join (an animal's flank or body part where those are
    separate entries until linked). With `animals`, pairwise precision and wrong merges are judged
    by the animal instead: two crops of one animal in one found individual are not a wrong merge,
    though the tool was not expected to join them."""
    animals = truth if animals is None else animals
    pairs_found = sum(c * (c - 1) // 2 for c in Counter(found).values())
    pairs_true = sum(c * (c - 1) // 2 for c in Counter(truth).values())
    pairs_both = sum(c * (c - 1) // 2 for c in Counter(zip(truth, found, strict=True)).values())
    pairs_right = sum(c * (c - 1) // 2 for c in Counter(zip(animals, found, strict=True)).values())
    precision = pairs_right / pairs_found if pairs_found else 1.0
    recall = pairs_both / pairs_true if pairs_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    joint = Counter(zip(truth, found, strict=True))
    truth_sizes, found_sizes = Counter(truth), Counter(found)
    n = len(truth) or 1
    b_precision = sum(joint[(t, f)] ** 2 / found_sizes[f] for t, f in joint) / n
    b_recall = sum(joint[(t, f)] ** 2 / truth_sizes[t] for t, f in joint) / n
    b_f1 = 2 * b_precision * b_recall / (b_precision + b_recall) if b_precision + b_recall else 0.0
    members: dict[str, set[str]] = {}
    for animal, f in zip(animals, found, strict=True):
        members.setdefault(f, set()).add(animal)
    wrong = sum(1 for m in members.values() if len(m) > 1)
    return ClusteringScores(
        precision, recall, f1, b_f1, len(truth_sizes), len(found_sizes), wrong, pairs_found
    )


@dataclass(frozen=True)
class OpenSetScores:
    """The field's open-set balanced accuracies at one threshold."""

    known_balanced_accuracy: float  # BAKS: test photos of gallery individuals named correctly
    unknown_balanced_accuracy: float  # BAUS: test photos of new individuals called new
    known_queries: int
    unknown_queries: int


def open_set_scores(
    gallery: np.ndarray,
    gallery_labels: list[str],
    queries: np.ndarray,
    query_labels: list[str],
    threshold: float,
) -> OpenSetScores:
    """Each query is "individual X" (its nearest gallery photo, if under the threshold) or "new";
    accuracies are averaged per individual, so common fish do not dominate."""
    known_ids = set(gallery_labels)
    per_individual: dict[tuple[bool, str], list[bool]] = {}
    for vector, truth in zip(queries, query_labels, strict=True):
        distances = np.sqrt(np.maximum(((gallery - vector) ** 2).sum(axis=1), 0.0))
        nearest = int(np.argmin(distances))
        decision = gallery_labels[nearest] if distances[nearest] < threshold else None
        is_known = truth in known_ids
        correct = decision == truth if is_known else decision is None
        per_individual.setdefault((is_known, truth), []).append(correct)

    def balanced(known: bool) -> tuple[float, int]:
        groups = [np.mean(v) for (k, _), v in per_individual.items() if k == known]
        count = sum(len(v) for (k, _), v in per_individual.items() if k == known)
        return (float(np.mean(groups)) if groups else float("nan")), count

    baks, n_known = balanced(True)
    baus, n_unknown = balanced(False)
    return OpenSetScores(baks, baus, n_known, n_unknown)
