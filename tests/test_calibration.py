"""Isotonic calibration of distances into match probabilities."""

from __future__ import annotations

import numpy as np

from catalog.calibration import Calibration, fit_isotonic


def test_separated_classes_give_one_then_zero() -> None:
    calibration = fit_isotonic(np.array([0.1, 0.2, 0.3]), np.array([0.8, 0.9, 1.0]))
    assert calibration.probability(0.15) == 1.0
    assert calibration.probability(0.95) == 0.0


def test_probability_never_rises_with_distance() -> None:
    rng = np.random.default_rng(0)
    calibration = fit_isotonic(rng.normal(0.5, 0.2, 500), rng.normal(1.0, 0.2, 5000))
    grid = np.linspace(0, 2, 200)
    values = np.array([calibration.probability(d) for d in grid])
    assert np.all(np.diff(values) <= 1e-12)
    # Balanced prior: where the two normal densities cross (0.75), P is about one half.
    assert 0.3 < calibration.probability(0.75) < 0.7


def test_overlap_is_pooled_by_hand() -> None:
    # Sorted labels by distance: 1 (0.1), 0 (0.2), 1 (0.3), 0 (0.4) with balanced weights 1/4 each:
    # the violating middle pair pools to 1/2.
    calibration = fit_isotonic(np.array([0.1, 0.3]), np.array([0.2, 0.4]))
    assert calibration.probability(0.1) == 1.0
    assert calibration.probability(0.3) == 0.5
    assert calibration.probability(0.4) == 0.0


def test_card_round_trip() -> None:
    calibration = fit_isotonic(np.array([0.1, 0.2]), np.array([0.5, 0.7]))
    assert Calibration.from_card(calibration.to_card()) == calibration
    assert Calibration.from_card(None) is None
