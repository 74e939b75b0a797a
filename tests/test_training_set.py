"""What a catalogue's decisions teach: positives, people's negatives, undone decisions left out."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from catalog import decisions
from catalog.errors import TrainingDataError
from catalog.offline.training_set import training_set
from catalog.store import Batch, IndividualRow, PhotoRow, SightingRow, Store

# photo, individual, status, P(same) of the automatic match
SIGHTINGS = [
    ("a1", "FP-000001", "new", None), ("a2", "FP-000001", "matched", 0.99),
    ("a3", "FP-000001", "matched", 0.5), ("a4", "FP-000001", "review", 0.8),
    ("b1", "FP-000002", "new", None), ("b2", "FP-000002", "matched", 0.6),
    ("c1", "FP-000003", "new", None),
    ("d1", "FP-000004", "new", None), ("d2", "FP-000004", "matched", 0.7),
    ("d3", "FP-000004", "matched", 0.7),
    ("e1", "FP-000005", "new", None), ("e2", "FP-000005", "matched", 0.6),
]  # fmt: skip


def _id(photo: str) -> str:
    return photo * 8


@pytest.fixture
def decided(tmp_path: Path) -> Store:
    """Five individuals, then: a3 confirmed, b2 rejected, C merged into A, d3 split off D, and a
    confirmation of e2 that was undone."""
    store = Store.open(tmp_path / "t.duckdb")
    run_id = store.start_run("abcdef123456", 0.9, "test", [str(tmp_path)])
    batch = Batch()
    for photo, individual, status, probability in SIGHTINGS:
        path = tmp_path / f"{photo}.jpg"
        path.write_bytes(b"a photo")
        batch.photos.append(
            PhotoRow(_id(photo), str(path), 7, 1, 8, 8, None, None, None, None, None, None, "left", "body")
        )
        batch.vectors.append(np.zeros(2, dtype=np.float32))
        batch.sightings.append(
            SightingRow(_id(photo), individual, status, 0.5, None, None, None, probability)
        )
        if status == "new":
            batch.individuals.append(
                IndividualRow(individual, int(individual[3:]), "left", "body", _id(photo))
            )
    store.write_batch(run_id, "abcdef123456", batch)
    decisions.confirm(store, [_id("a3")], "same scar")
    decisions.reject(store, [_id("b2")], "other pattern")
    decisions.merge(store, "FP-000001", "FP-000003", "tag read on both")
    decisions.split(store, "FP-000004", [_id("d3")], "two fish")
    undone = decisions.confirm(store, [_id("e2")], "clicked the wrong one")
    decisions.undo(store, undone)
    return store


def _pairs(found: list[tuple[str, str]]) -> set[frozenset[str]]:
    return {frozenset(pair) for pair in found}


def test_decisions_give_exactly_the_expected_pairs(decided: Store) -> None:
    examples = training_set(decided, min_individuals=1)
    photos = {pid[:2]: photo for pid, photo in zip(examples.photo_ids, examples.photos, strict=True)}
    by_individual: dict[str, list[str]] = {}
    for name, photo in photos.items():
        by_individual.setdefault(photo.individual, []).append(name)
    positives = {frozenset(p) for members in by_individual.values() for p in combinations(members, 2)}
    # A: its founder, a sure match, a confirmed match and the merged-in C; not the review (a4).
    assert sorted(by_individual["FP-000001"]) == ["a1", "a2", "a3", "c1"]
    assert positives == _pairs(list(combinations(["a1", "a2", "a3", "c1"], 2)))
    # The rejected b2 against B's founder; the split-off d3 against D's founder (d2 is an unsure
    # automatic match, so not D's for certain).
    negatives = {
        frozenset((examples.photo_ids[a][:2], examples.photo_ids[b][:2])) for a, b in examples.negative_pairs
    }
    assert negatives == {frozenset(("b1", "b2")), frozenset(("d1", "d3"))}
    # E has one trusted photo once the confirmation of e2 is undone, and no negatives: skipped.
    assert "e1" not in photos and "e2" not in photos and "d2" not in photos
    assert examples.individuals_skipped == 1
    assert examples.decisions == {"confirm": 1, "reject": 1, "merge": 1, "split": 1}
    assert examples.decisions_undone == 1


def test_an_undone_decision_teaches_nothing(decided: Store) -> None:
    before = training_set(decided, min_individuals=1)
    decisions.undo(decided, max(d.decision_id for d in decided.live_decisions()))  # the split
    after = training_set(decided, min_individuals=1)
    assert len(before.negative_pairs) == 2 and len(after.negative_pairs) == 1
    assert not any(pid.startswith("d3") for pid in after.photo_ids)


def test_a_later_merge_overrides_an_earlier_reject(decided: Store) -> None:
    decisions.merge(decided, "FP-000002", "FP-000006", "it was B after all")
    negatives = training_set(decided, min_individuals=1).negative_pairs
    assert len(negatives) == 1  # b1-b2 are now one individual: no longer a negative


def test_a_missing_file_is_reported_not_fatal(decided: Store, tmp_path: Path) -> None:
    (tmp_path / "a2.jpg").unlink()
    examples = training_set(decided, min_individuals=1)
    assert [pid[:2] for pid in examples.missing] == ["a2"]
    assert not any(pid.startswith("a2") for pid in examples.photo_ids)


def test_too_few_decisions_is_one_clear_line(decided: Store) -> None:
    with pytest.raises(TrainingDataError) as raised:
        training_set(decided)
    message = str(raised.value)
    assert "\n" not in message and str(decided.db_path) in message and "finprint review" in message
