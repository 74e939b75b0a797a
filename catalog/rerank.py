"""k-reciprocal re-ranking (Zhong et al. 2017): distances that also ask whether two photos share neighbours.

Two photos of one animal often sit among each other's nearest neighbours, and so do their
neighbours, while a stranger that happens to be near one photo rarely shares its neighbourhood.
The re-ranked distance of photos i and j mixes their own distance with the Jaccard distance of
their k-reciprocal neighbourhoods: (1 - weight) * jaccard + weight * distance. It only reorders
candidates for a person to look at; it never decides a match (its scale is not the model's, so the
card's threshold does not apply to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reranking:
    """The paper's parameters (k1 = 20, k2 = 6, lambda = 0.3), not fitted to any set here."""

    neighbours: int = 20  # k1: how far the reciprocal neighbourhood reaches
    expansion: int = 6  # k2: neighbours whose neighbourhoods are averaged in (query expansion)
    distance_weight: float = 0.3  # lambda: the original distance's share of the result


def reciprocal_neighbours(order: np.ndarray, k: int) -> np.ndarray:
    """rows x rows booleans: j is among i's k nearest (i itself included) and i among j's."""
    rows = len(order)
    within = np.zeros((rows, rows), dtype=bool)
    within[np.arange(rows)[:, None], order[:, : k + 1]] = True
    reciprocal: np.ndarray = within & within.T
    return reciprocal


def _expanded(first: np.ndarray, half: np.ndarray) -> np.ndarray:
    """R*: each photo's k1-reciprocal set, grown by the k1/2-reciprocal set of any member that
    shares more than two thirds of its own set with it (the paper's robust expansion)."""
    grown = first.copy()
    for i in range(len(first)):
        members = np.flatnonzero(first[i])
        for member in members:
            candidate = half[member]
            if np.count_nonzero(candidate & first[i]) > 2 / 3 * np.count_nonzero(candidate):
                grown[i] |= candidate
    return grown


def _jaccard(weights: np.ndarray) -> np.ndarray:
    """1 - sum(min) / sum(max) of every pair of rows, each row summing to 1 (so sum(max) is
    2 - sum(min)); computed over shared non-zero columns only."""
    rows = len(weights)
    overlap = np.zeros((rows, rows), dtype=np.float64)
    holders = [np.flatnonzero(weights[:, column]) for column in range(weights.shape[1])]
    for i in range(rows):
        for column in np.flatnonzero(weights[i]):
            others = holders[column]
            overlap[i, others] += np.minimum(weights[i, column], weights[others, column])
    result: np.ndarray = 1.0 - overlap / (2.0 - overlap)
    return result


def rerank(distances: np.ndarray, settings: Reranking = Reranking()) -> np.ndarray:
    """The re-ranked distances of a square matrix of distances among one set of photos (every
    photo both asks and is asked about, as in a leave-one-out ranking or a catalogue partition)."""
    rows = len(distances)
    if rows < 3:
        return distances.copy()
    k1 = min(settings.neighbours, rows - 1)
    # Ties broken by index, so that the result does not depend on the sort's whims.
    order = np.argsort(distances, axis=1, kind="stable")
    first = reciprocal_neighbours(order, k1)
    half = reciprocal_neighbours(order, max(1, round(k1 / 2)))
    grown = _expanded(first, half)
    weights = np.where(grown, np.exp(-distances), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    k2 = min(settings.expansion, rows)
    if k2 > 1:
        weights = weights[order[:, :k2]].mean(axis=1)
    jaccard = _jaccard(weights)
    combined: np.ndarray = (1 - settings.distance_weight) * jaccard + settings.distance_weight * distances
    return combined
