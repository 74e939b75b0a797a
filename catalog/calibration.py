"""Match probability: a monotone map from embedding distance to P(same individual), plain numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_KNOTS = 64


@dataclass(frozen=True)
class Calibration:
    """Piecewise-linear P(same) over distance, fitted by isotonic regression on labelled pairs.

    The prior is balanced: the probability that a pair at this distance shows one fish, for pairs
    drawn half same-fish, half different-fish (as in the seed study's table)."""

    distances: tuple[float, ...]
    probabilities: tuple[float, ...]

    def probability(self, distance: float) -> float:
        return float(np.interp(distance, self.distances, self.probabilities))

    def to_card(self) -> dict[str, Any]:
        return {
            "method": "isotonic",
            "prior": "balanced",
            "distance": [round(d, 5) for d in self.distances],
            "probability": [round(p, 5) for p in self.probabilities],
        }

    @classmethod
    def from_card(cls, body: dict[str, Any] | None) -> Calibration | None:
        if not body or body.get("method") != "isotonic":
            return None
        distances = tuple(float(d) for d in body["distance"])
        probabilities = tuple(float(p) for p in body["probability"])
        if len(distances) != len(probabilities) or len(distances) < 2:
            return None
        return cls(distances, probabilities)


def fit_isotonic(positive_distances: np.ndarray, negative_distances: np.ndarray) -> Calibration:
    """Pool-adjacent-violators: the non-increasing P(same | distance) closest to the labels."""
    distances = np.concatenate([positive_distances, negative_distances]).astype(np.float64)
    labels = np.concatenate([np.ones(len(positive_distances)), np.zeros(len(negative_distances))])
    # Balance the classes so the probability does not depend on how many pairs of each there are.
    weights = np.concatenate(
        [
            np.full(len(positive_distances), 0.5 / max(len(positive_distances), 1)),
            np.full(len(negative_distances), 0.5 / max(len(negative_distances), 1)),
        ]
    )
    order = np.argsort(distances, kind="stable")
    distances, labels, weights = distances[order], labels[order], weights[order]
    # Blocks of (weighted mean, weight, last distance); merge while a later block is higher.
    means: list[float] = []
    masses: list[float] = []
    ends: list[float] = []
    for d, y, w in zip(distances, labels, weights, strict=True):
        means.append(float(y))
        masses.append(float(w))
        ends.append(float(d))
        while len(means) > 1 and means[-2] < means[-1]:
            total = masses[-2] + masses[-1]
            merged = (means[-2] * masses[-2] + means[-1] * masses[-1]) / total
            means[-2:] = [merged]
            masses[-2:] = [total]
            ends[-2:] = [ends[-1]]
    knots_d = np.asarray(ends)
    knots_p = np.asarray(means)
    if len(knots_d) > MAX_KNOTS:
        # Keep knots where the probability moves, not where the (mostly different-fish) pairs are.
        levels = np.linspace(knots_p[0], knots_p[-1], MAX_KNOTS)
        picks = np.unique([*(int(np.argmax(knots_p <= level)) for level in levels), 0, len(knots_p) - 1])
        knots_d, knots_p = knots_d[picks], knots_p[picks]
    if len(knots_d) == 1:
        knots_d = np.array([knots_d[0], knots_d[0] + 1e-6])
        knots_p = np.array([knots_p[0], knots_p[0]])
    return Calibration(tuple(float(d) for d in knots_d), tuple(float(p) for p in knots_p))
