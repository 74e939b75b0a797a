"""Metrics computed by hand on tiny examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catalog.offline.metrics import (
    ReidMetrics,
    clustering_scores,
    reid_metrics,
    roc_auc,
    threshold_at_false_match_rate,
)


def test_perfect_clustering_scores_one() -> None:
    scores = clustering_scores(["a", "a", "b"], ["x", "x", "y"])
    assert scores.pairwise_precision == 1.0 and scores.pairwise_recall == 1.0 and scores.bcubed_f1 == 1.0


def test_one_wrong_merge_by_hand() -> None:
    # Truth a,a,b; found all in one: 3 found pairs, 1 true pair among them.
    scores = clustering_scores(["a", "a", "b"], ["x", "x", "x"])
    assert scores.pairwise_precision == pytest.approx(1 / 3)
    assert scores.pairwise_recall == 1.0
    assert scores.wrong_merges == 1
    # B-cubed precision: (2/3 + 2/3 + 1/3) / 3 = 5/9; recall 1.
    assert scores.bcubed_f1 == pytest.approx(2 * (5 / 9) / (5 / 9 + 1))


def test_split_individual_lowers_recall_only() -> None:
    scores = clustering_scores(["a", "a", "a"], ["x", "x", "y"])
    assert scores.pairwise_precision == 1.0
    assert scores.pairwise_recall == pytest.approx(1 / 3)


def test_two_crops_of_one_animal_joined_are_not_a_wrong_merge() -> None:
    # Truth by crop: lion A's ear, A's face, B's face; found: A's ear and face together, B alone.
    truth = ["A|ear", "A|face", "B|face"]
    animals = ["A", "A", "B"]
    by_crop = clustering_scores(truth, ["x", "x", "y"])
    by_animal = clustering_scores(truth, ["x", "x", "y"], animals=animals)
    assert by_crop.pairwise_precision == 0.0 and by_crop.wrong_merges == 1
    assert by_animal.pairwise_precision == 1.0 and by_animal.wrong_merges == 0
    # Recall is still judged by crop: no crop had a pair to find.
    assert by_animal.pairwise_recall == 1.0 and by_animal.true_individuals == 3
    # Two animals in one found individual stay a wrong merge.
    mixed = clustering_scores(truth, ["x", "y", "x"], animals=animals)
    assert mixed.pairwise_precision == 0.0 and mixed.wrong_merges == 1


def test_auc_by_hand() -> None:
    assert roc_auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0.5]), np.array([0.3, 0.7])) == 0.5
    assert roc_auc(np.array([0.3]), np.array([0.3])) == 0.5


def test_threshold_at_false_match_rate() -> None:
    negatives = np.arange(1, 101, dtype=float)  # 1..100
    assert threshold_at_false_match_rate(negatives, 0.0) == 1.0
    assert threshold_at_false_match_rate(negatives, 0.05) == 6.0


def test_rank1_ignores_the_query_own_encounter() -> None:
    vectors = np.array([[0.0], [0.01], [1.0], [5.0]])
    labels = ["a", "a", "a", "b"]
    # Photo 0's nearest neighbour is photo 1 of the same encounter: it must not count.
    metrics = reid_metrics(vectors, labels, ["e1", "e1", "e2", "e3"])
    assert metrics.rank1 == 1.0
    assert metrics.n_queries == 3  # photo 3 has no same-individual photo elsewhere
    tricky = reid_metrics(np.array([[0.0], [0.01], [4.0], [1.0]]), labels, ["e1", "e1", "e2", "e3"])
    assert tricky.rank1 < 1.0


def test_roc_points_run_from_nothing_accepted_to_everything() -> None:
    from catalog.offline.metrics import roc_points

    far, tar = roc_points(np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7]))
    assert (far[0], tar[0]) == (0.0, 0.0) and (far[-1], tar[-1]) == (1.0, 1.0)
    assert list(far) == sorted(far) and list(tar) == sorted(tar)
    # Perfect separation: every same-fish pair is accepted before any different-fish pair.
    assert max(t for f, t in zip(far, tar, strict=True) if f == 0.0) == 1.0


def _clustered_metrics() -> ReidMetrics:
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(c, 0.4, (5, 4)) for c in range(6)])
    labels = [str(i // 5) for i in range(30)]
    return reid_metrics(vectors, labels, [f"e{i}" for i in range(30)], threshold=0.7)


@pytest.mark.slow
def test_evaluation_plot_marks_the_threshold_and_the_operating_points_in_png_svg_and_pdf(
    tmp_path: Path,
) -> None:
    from PIL import Image

    from catalog.offline.evaluate import VerificationResult
    from catalog.offline.plot import plot_evaluation
    from catalog.offline.shortlist import MethodScores

    metrics = _clustered_metrics()
    assert metrics.operating_point is not None and 0 < metrics.operating_point[1] <= 1
    fused = MethodScores(
        0.9, 0.8, 0.95, 0.99, 12, ((0.0, 0.001, 0.1, 1.0), (0.0, 0.6, 0.9, 1.0)), (0.001, 0.6)
    )
    verification = VerificationResult(20, {"embedding": fused, "fused": fused}, 10.0, 5.0, True)
    plot_evaluation(metrics, tmp_path / "eval.png", "drawn fish", 0.7, [verification])
    with Image.open(tmp_path / "eval.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    assert image.format == "PNG" and image.width > 1000
    # matplotlib's first three colours: the three accuracy curves and the ROCs.
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):
        assert (pixels == colour).all(axis=2).sum() > 50
    plot_evaluation(metrics, tmp_path / "eval.svg", "drawn fish", 0.7, [verification])
    svg = (tmp_path / "eval.svg").read_text()
    for words in (
        "model threshold 0.700",
        "false-accept rate",
        "log scale",
        "fused, shortlists",
        "at the model",
    ):
        assert words in svg
    plot_evaluation(metrics, tmp_path / "eval.pdf", "drawn fish", 0.7)
    assert (tmp_path / "eval.pdf").read_bytes().startswith(b"%PDF")


def test_a_plot_to_a_missing_folder_or_of_an_unknown_type_is_one_line(tmp_path: Path) -> None:
    from catalog.errors import FinprintError
    from catalog.offline.plot import plot_evaluation

    metrics = _clustered_metrics()
    with pytest.raises(FinprintError, match=r"could not write the plot") as missing:
        plot_evaluation(metrics, tmp_path / "no-such-folder" / "eval.png", "t", 0.7)
    assert "\n" not in str(missing.value)
    with pytest.raises(FinprintError, match=r"\.png, \.svg, \.pdf"):
        plot_evaluation(metrics, tmp_path / "eval.jpg", "t", 0.7)


def test_the_threshold_is_safe_on_every_set_it_serves_and_no_set_decides_alone() -> None:
    from catalog.offline.metrics import threshold_safe_per_set

    rng = np.random.default_rng(0)
    easy = (rng.uniform(0.1, 0.5, 200), rng.uniform(0.8, 1.6, 20_000))  # well separated
    harder = (rng.uniform(0.3, 0.9, 200), rng.uniform(0.6, 1.6, 20_000))  # overlapping
    hopeless = (rng.uniform(0.5, 1.5, 200), rng.uniform(0.0, 1.5, 20_000))  # look-alikes everywhere
    threshold, points = threshold_safe_per_set(
        {"easy": easy, "harder": harder, "hopeless": hopeless}, 1e-3, 0.1
    )
    by_name = {p.name: p for p in points}
    # The strictest of the sets that can be served decides, and holds each of them to the rate...
    assert threshold == min(by_name["easy"].own_threshold, by_name["harder"].own_threshold)
    assert by_name["easy"].false_match_rate <= 1e-3 and by_name["harder"].false_match_rate <= 1e-3
    assert by_name["easy"].true_match_rate > 0.9
    # ...while a set whose own safe threshold matches almost nothing is left to verification.
    assert not by_name["hopeless"].decides and by_name["hopeless"].own_true_match_rate < 0.1
    assert by_name["hopeless"].own_threshold < threshold


def test_a_set_left_to_verification_still_bounds_the_threshold_at_the_looser_rate() -> None:
    from catalog.offline.metrics import threshold_safe_per_set

    rng = np.random.default_rng(0)
    easy = (rng.uniform(0.1, 0.5, 200), rng.uniform(0.8, 1.6, 20_000))
    # Look-alikes from 0.6 up, re-sightings only from 0.7: its own safe threshold (about 0.6)
    # matches none of them, so it does not decide, but easy's threshold (about 0.8) would match a
    # fifth of its different pairs.
    unserved = (rng.uniform(0.7, 1.5, 200), rng.uniform(0.6, 1.5, 20_000))
    # Look-alikes only beyond easy's threshold: left to verification and not bounding anything.
    far = (rng.uniform(1.2, 1.6, 200), rng.uniform(1.0, 1.6, 20_000))
    sets = {"easy": easy, "unserved": unserved, "far": far}
    loose, _ = threshold_safe_per_set(sets, 1e-3, 0.1)
    bounded, points = threshold_safe_per_set(sets, 1e-3, 0.1, unserved_false_match_rate=1e-2)
    by_name = {p.name: p for p in points}
    assert not by_name["unserved"].decides and not by_name["far"].decides
    assert np.mean(unserved[1] < loose) > 0.1  # without the bound: a tenth and more matched
    assert bounded < loose
    assert by_name["unserved"].false_match_rate <= 1e-2
    assert by_name["unserved"].false_match_rate > 1e-3  # held to the looser rate, not the strict one
    assert by_name["easy"].true_match_rate > 0.5
    assert by_name["far"].false_match_rate == 0.0


def test_a_collapsed_embedding_still_gives_a_positive_threshold() -> None:
    from catalog.offline.metrics import MIN_THRESHOLD, threshold_safe_per_set

    threshold, _ = threshold_safe_per_set({"all": (np.zeros(10), np.zeros(100))}, 1e-4, 0.1)
    assert threshold == MIN_THRESHOLD > 0


def test_the_paired_bootstrap_is_certain_only_when_many_animals_agree() -> None:
    from catalog.offline.metrics import paired_bootstrap

    animals = np.repeat(np.arange(40), 5)
    worse = np.zeros(200)
    better_everywhere = (np.arange(200) % 5 < 2).astype(float)  # 2 more of each animal's 5 right
    difference, low, high = paired_bootstrap(better_everywhere, worse, animals)
    assert difference == pytest.approx(0.4) and 0.0 < low <= 0.4 <= high
    assert paired_bootstrap(worse, worse, animals) == (0.0, 0.0, 0.0)
    # The same gain from one of four animals: some resamples leave it out, so nothing is certain.
    few = np.repeat(np.arange(4), 50)
    one_animal = (few == 0).astype(float)
    difference, low, high = paired_bootstrap(one_animal, np.zeros(200), few)
    assert difference == pytest.approx(0.25) and low == 0.0 and high > 0.25


def test_query_scores_are_what_the_retrieval_means_average() -> None:
    from catalog.offline.metrics import pairwise_distances, query_scores, retrieval_scores

    rng = np.random.default_rng(3)
    labels = np.repeat(np.array(list("abcdef")), 4)
    vectors = rng.normal(size=(24, 8)) + np.repeat(rng.normal(size=(6, 8)) * 2, 4, axis=0)
    encounters = np.array([f"{label}{i % 2}" for i, label in enumerate(labels)])
    distances = pairwise_distances(vectors)
    per_query = query_scores(distances, labels, encounters)
    means = retrieval_scores(distances, labels, encounters)
    assert len(per_query.rows) == means.queries == 24
    assert (
        np.mean(per_query.rank1) == means.rank1
        and np.mean(per_query.average_precision) == means.mean_average_precision
    )
    assert np.all(per_query.rank5 >= per_query.rank1)


def test_retrieval_figures_carry_an_interval_that_narrows_with_more_identities() -> None:
    from catalog.offline.metrics import reid_metrics

    def metrics_for(identities: int) -> tuple[float, tuple[float, float] | None]:
        rng = np.random.default_rng(identities)
        labels = [f"id{i}" for i in range(identities) for _ in range(4)]
        centres = rng.normal(size=(identities, 16))
        vectors = np.repeat(centres, 4, axis=0) + rng.normal(size=(identities * 4, 16)) * 0.9
        encounters = [f"{label}/{j % 2}" for j, label in enumerate(labels)]
        scores = reid_metrics(vectors, labels, encounters)
        assert scores.map_interval is not None
        assert scores.map_interval[0] <= scores.mean_average_precision <= scores.map_interval[1]
        return scores.rank1, scores.rank1_interval

    few_rank1, few = metrics_for(4)
    many_rank1, many = metrics_for(60)
    assert few is not None and many is not None
    assert few[0] <= few_rank1 <= few[1] and many[0] <= many_rank1 <= many[1]
    assert few[1] - few[0] > many[1] - many[0] > 0
