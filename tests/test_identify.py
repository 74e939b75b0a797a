"""Identification decisions on hand-placed vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.identify import Assignment, Identifier, _verdict, partition_key


def _identifier() -> Identifier:
    ident = Identifier(dim=2, distance_threshold=1.0, review_band_fraction=0.1, neighbours_k=5)
    ident.add(
        "p",
        ["a1", "a2", "b1"],
        ["FP-A", "FP-A", "FP-B"],
        np.array([[0, 0], [0.1, 0], [5, 0]], dtype=np.float32),
    )
    return ident


def test_close_photo_is_matched_to_the_nearest_individual() -> None:
    decision = _identifier().assign("p", np.array([0.3, 0], dtype=np.float32))
    assert decision.individual_id == "FP-A"
    assert decision.status == "matched"
    assert decision.matched_photo_id == "a2"
    assert abs((decision.distance or 0) - 0.2) < 1e-4


def test_far_photo_is_a_new_individual() -> None:
    decision = _identifier().assign("p", np.array([2.5, 0], dtype=np.float32))
    assert decision.individual_id is None and decision.status == "new"


def test_just_under_the_threshold_is_matched_but_sent_to_review() -> None:
    decision = _identifier().assign("p", np.array([1.05, 0], dtype=np.float32))
    assert decision.individual_id == "FP-A" and decision.status == "review"


def test_just_over_the_threshold_is_new_but_sent_to_review() -> None:
    decision = _identifier().assign("p", np.array([-1.05, 0], dtype=np.float32))
    assert decision.individual_id is None and decision.status == "review"
    assert decision.matched_photo_id == "a1" and decision.second_individual_id is None


def test_a_score_exactly_at_the_threshold_is_not_a_match_on_either_scale() -> None:
    proposal = Assignment("FP-A", "matched", 1.0, "a1", "FP-B", 1.2)
    # Distances enter negated: a photo exactly at distance threshold 1.0 is a new fish, in review.
    on_distance = _verdict(proposal, -1.0, -1.2, -1.0, accept_above=-1.0, band=0.1)
    # A fused score exactly at its decision point (log-odds 2.0) is treated the same way.
    on_score = _verdict(proposal, 2.0, 1.5, 2.0, accept_above=2.0, band=0.5)
    for decision in (on_distance, on_score):
        assert decision.individual_id is None and decision.status == "review"
        assert decision.second_individual_id is None and decision.matched_photo_id == "a1"
    # Just past the decision point, outside the band, and no runner-up passing: a match.
    clear = _verdict(proposal, 3.0, 1.5, 3.0, accept_above=2.0, band=0.5)
    assert clear.individual_id == "FP-A" and clear.status == "matched"
    assert clear.second_individual_id is None


def test_photo_close_to_two_individuals_is_flagged_not_merged() -> None:
    ident = Identifier(dim=2, distance_threshold=1.0, review_band_fraction=0.1, neighbours_k=5)
    ident.add("p", ["a", "b"], ["FP-A", "FP-B"], np.array([[0, 0], [1.2, 0]], dtype=np.float32))
    decision = ident.assign("p", np.array([0.6, 0], dtype=np.float32))
    assert decision.status == "review"
    assert {decision.individual_id, decision.second_individual_id} == {"FP-A", "FP-B"}


def test_partitions_keep_flanks_and_crops_apart() -> None:
    ident = _identifier()
    assert ident.assign("other", np.array([0, 0], dtype=np.float32)).status == "new"
    assert partition_key("left", "head", sides_split=True) != partition_key("right", "head", sides_split=True)
    assert partition_key("left", "head", sides_split=False) == partition_key(
        "right", "head", sides_split=False
    )


def test_graph_grows_past_its_initial_capacity() -> None:
    ident = Identifier(dim=4, distance_threshold=0.5, review_band_fraction=0.1, neighbours_k=3)
    vectors = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32) * 10
    ident.add("p", [str(i) for i in range(3000)], [f"FP-{i}" for i in range(3000)], vectors)
    decision = ident.assign("p", vectors[2500] + 0.01)
    assert decision.individual_id == "FP-2500"
    assert len(ident) == 3000


def test_a_chain_of_near_photos_is_matched_but_sent_to_review() -> None:
    ident = Identifier(dim=2, distance_threshold=1.0, review_band_fraction=0.1, neighbours_k=5)
    # One individual whose photos drifted along a line: A at 0, B at 0.8, C at 1.6.
    ident.add("p", ["a", "b", "c"], ["FP-A"] * 3, np.array([[0, 0], [0.8, 0], [1.6, 0]], dtype=np.float32))
    decision = ident.assign("p", np.array([2.3, 0], dtype=np.float32))
    # Close to C (0.7) but, on average, far from A, B, C: not a silent match.
    assert decision.individual_id == "FP-A" and decision.status == "review"
    compact = ident.assign("p", np.array([0.4, 0.1], dtype=np.float32))
    assert compact.status == "matched"


def test_saved_graphs_load_and_extend(tmp_path: Path) -> None:
    vectors = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    first = Identifier(dim=4, distance_threshold=0.5, review_band_fraction=0.1, neighbours_k=3)
    first.add("p", [f"ph{i}" for i in range(40)], [f"FP-{i}" for i in range(40)], vectors[:40])
    first.save(tmp_path, "model-a")
    # DuckDB says: 50 photos now, and a person renamed nothing but merged FP-1 into FP-0.
    owners = {"p": {f"ph{i}": ("FP-0" if i == 1 else f"FP-{i}") for i in range(50)}}
    second = Identifier(dim=4, distance_threshold=0.5, review_band_fraction=0.1, neighbours_k=3)
    missing = second.load(tmp_path, "model-a", owners)
    assert missing == {"p": sorted(f"ph{i}" for i in range(40, 50))}
    assert second.assign("p", vectors[1]).individual_id == "FP-0"  # owners come from DuckDB


def _saved_graph(directory: Path, count: int, seed: int) -> tuple[Identifier, dict[str, dict[str, str]]]:
    """A graph of `count` photos, one individual each, saved for model-a; and DuckDB's owners."""
    vectors = np.random.default_rng(seed).normal(size=(count, 4)).astype(np.float32)
    saved = Identifier(dim=4, distance_threshold=0.5, review_band_fraction=0.1, neighbours_k=3)
    saved.add("p", [f"ph{i}" for i in range(count)], [f"FP-{i}" for i in range(count)], vectors)
    saved.save(directory, "model-a")
    return saved, {"p": {f"ph{i}": f"FP-{i}" for i in range(count)}}


def test_saved_graphs_of_another_model_or_a_lost_photo_are_not_used(tmp_path: Path) -> None:
    _, owners = _saved_graph(tmp_path, 10, seed=2)
    other_model = Identifier(dim=4, distance_threshold=0.5, review_band_fraction=0.1, neighbours_k=3)
    assert len(other_model.load(tmp_path, "model-b", owners)["p"]) == 10
    del owners["p"]["ph3"]
    lost_photo = Identifier(dim=4, distance_threshold=0.5, review_band_fraction=0.1, neighbours_k=3)
    assert len(lost_photo.load(tmp_path, "model-a", owners)["p"]) == 9
    assert len(lost_photo) == 0


def test_a_fish_first_seen_tonight_is_joined_by_average_linkage() -> None:
    ident = Identifier(dim=2, distance_threshold=1.0, review_band_fraction=0.1, neighbours_k=5)
    ident.add("p", ["a", "b"], ["FP-NEW", "FP-NEW"], np.array([[0, 0], [0.9, 0]], dtype=np.float32))
    ident.mark_new("FP-NEW")
    # 0.8 from b but 1.7 from a: mean 1.25 over the threshold, so not silently the same fish.
    drifting = ident.assign("p", np.array([1.7, 0], dtype=np.float32))
    assert drifting.individual_id is None
    # The same photo joins an established individual on its nearest photo (then flagged).
    old = Identifier(dim=2, distance_threshold=1.0, review_band_fraction=0.1, neighbours_k=5)
    old.add("p", ["a", "b"], ["FP-OLD", "FP-OLD"], np.array([[0, 0], [0.9, 0]], dtype=np.float32))
    assert old.assign("p", np.array([1.7, 0], dtype=np.float32)).individual_id == "FP-OLD"


def test_a_match_to_a_fish_first_seen_tonight_keeps_both_of_its_distances() -> None:
    ident = Identifier(dim=2, distance_threshold=1.0, review_band_fraction=0.1, neighbours_k=5)
    ident.add("p", ["a", "b"], ["FP-NEW", "FP-NEW"], np.array([[0, 0], [0.4, 0]], dtype=np.float32))
    ident.mark_new("FP-NEW")
    decision = ident.assign("p", np.array([0.5, 0], dtype=np.float32))
    assert decision.individual_id == "FP-NEW" and decision.matched_photo_id == "b"
    # What a reviewer reads beside the matched photo is the distance to that photo...
    assert decision.distance is not None and abs(decision.distance - 0.1) < 1e-6
    # ...and the decision was taken on the mean distance to the fish's photos (0.5 and 0.1).
    assert decision.decision_distance is not None and abs(decision.decision_distance - 0.3) < 1e-6


def test_a_batch_queried_at_once_decides_exactly_as_photo_by_photo() -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(60, 16)).astype(np.float32)
    catalogued = centres[np.arange(300) % 60] + rng.normal(scale=0.15, size=(300, 16)).astype(np.float32)
    owners = [f"FP-{i % 60:06d}" for i in range(300)]
    # Tonight: re-sightings, two new fish photographed twice each (they must find each other),
    # and strangers.
    newcomers = rng.normal(size=(2, 16)).astype(np.float32)
    tonight = np.concatenate([
        centres[:10] + rng.normal(scale=0.15, size=(10, 16)).astype(np.float32),
        newcomers, newcomers + 0.05, rng.normal(size=(6, 16)).astype(np.float32),
    ])  # fmt: skip

    def night(batched: bool) -> list[Assignment]:
        identifier = Identifier(dim=16, distance_threshold=1.2, review_band_fraction=0.1, neighbours_k=10)
        identifier.add("p", [f"old{i}" for i in range(300)], owners, catalogued)
        nearest = identifier.prefetch("p", tonight) if batched else [None] * len(tonight)
        decisions = []
        for number, (vector, near) in enumerate(zip(tonight, nearest, strict=True)):
            decision = identifier.assign("p", vector, prefetched=near)
            individual = decision.individual_id or f"NEW-{number}"
            if decision.individual_id is None:
                identifier.mark_new(individual)
            identifier.add("p", [f"new{number}"], [individual], vector[None, :])
            decisions.append(decision)
        return decisions

    one_by_one, batched = night(batched=False), night(batched=True)

    def verdict(d: Assignment) -> tuple[object, ...]:
        return d.individual_id, d.status, d.matched_photo_id, d.second_individual_id

    assert [verdict(d) for d in batched] == [verdict(d) for d in one_by_one]
    # Distances agree up to float32 rounding (hnswlib's sums against numpy's for the batch's own photos).
    assert np.allclose(
        [d.distance or 0.0 for d in batched], [d.distance or 0.0 for d in one_by_one], atol=1e-5
    )
    # The second photo of each new fish found the first, added after the batch was queried.
    assert {d.individual_id for d in batched[12:14]} == {"NEW-10", "NEW-11"}


def test_a_saved_graph_with_changed_bytes_is_rebuilt_never_loaded(tmp_path: Path) -> None:
    saved, owners = _saved_graph(tmp_path, 30, seed=3)
    (graph_file,) = tmp_path.glob("*.bin")
    data = bytearray(graph_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # a zeroed region: hnswlib would trust it
    graph_file.write_bytes(bytes(data))
    notes: list[str] = []
    fresh = Identifier(dim=4, distance_threshold=0.5, review_band_fraction=0.1, neighbours_k=3)
    assert len(fresh.load(tmp_path, "model-a", owners, notes)["p"]) == 30  # all re-added from DuckDB
    assert len(fresh) == 0 and "checksum" in notes[0]
    # Shuffled photo ids would pair vectors with the wrong photos: caught the same way.
    saved.save(tmp_path, "model-a")
    (ids_file,) = tmp_path.glob("*.ids")
    ids_file.write_text("\n".join(reversed(ids_file.read_text().split("\n"))), encoding="utf-8")
    notes.clear()
    assert len(fresh.load(tmp_path, "model-a", owners, notes)["p"]) == 30
    assert "checksum" in notes[0]
