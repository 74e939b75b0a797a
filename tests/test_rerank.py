"""k-reciprocal re-ranking: a near stranger outside a photo's neighbourhood falls behind its own animal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.offline.metrics import pairwise_distances
from catalog.rerank import Reranking, rerank
from tests.helpers import run_finprint


def _two_animals_and_a_stray_photo() -> tuple[np.ndarray, int, int, list[int]]:
    """Animal A: four photos around (0, 0) and a fifth, the query, at (0.3, 0); animal B: six
    photos around (1, 0) and one stray at (0.55, 0), nearer the query than any photo of A but
    among B's neighbours, not A's."""
    rng = np.random.default_rng(0)
    around_a = rng.normal(0, 0.03, (4, 2))
    around_b = rng.normal(0, 0.03, (6, 2)) + np.asarray([1.0, 0.0])
    points = np.vstack([around_a, [[0.3, 0.0]], around_b, [[0.55, 0.0]]])
    return pairwise_distances(points), 4, 11, list(range(4))


def test_a_stray_photo_of_another_animal_is_no_longer_nearest_once_reranked() -> None:
    distances, query, stray, animal_a = _two_animals_and_a_stray_photo()
    others = [i for i in range(len(distances)) if i != query]
    assert others[int(np.argmin(distances[query, others]))] == stray  # the plain ranking errs
    reranked = rerank(distances, Reranking(neighbours=5, expansion=1))
    assert others[int(np.argmin(reranked[query, others]))] in animal_a
    # A distance still: symmetric, zero to itself, and the clear-cut pairs keep their order.
    assert np.allclose(reranked, reranked.T)
    assert np.allclose(np.diag(reranked), 0.0)
    assert reranked[0, 1] < reranked[0, 6]


def test_too_few_photos_to_have_neighbourhoods_keep_their_distances() -> None:
    distances = pairwise_distances(np.asarray([[0.0, 0.0], [1.0, 0.0]]))
    assert np.array_equal(rerank(distances), distances)


def test_evaluate_shows_the_reranked_figures_beside_the_plain_ones(labelled_set: Path) -> None:
    result = run_finprint("evaluate", str(labelled_set), "--rerank", "--shortlist-k", "0")
    assert result.returncode == 0, result.stderr
    assert "re-ranked distances" in result.stdout
    assert result.stdout.count("mAP") == 2
    refused = run_finprint("evaluate", str(labelled_set), "--rerank", "--split", "open")
    assert refused.returncode == 1 and "leave out --split" in refused.stderr
