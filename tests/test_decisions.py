"""People's decisions: applied, recorded with reason, undoable, and kept by later runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catalog import decisions
from catalog.errors import FinprintError
from catalog.night import index
from catalog.settings import Settings
from catalog.store import Batch, IndividualRow, PhotoRow, SightingRow, Store


def _catalogue(store: Store, sightings: list[tuple[str, str, str, str | None]]) -> Store:
    """Write (photo, individual, status, matched photo) as one night's batch; photo ids are the
    name eight times (long enough to be found by prefix), paths s/<name>.jpg, every photo a left
    body; an individual not yet catalogued is created with its first photo."""
    batch = Batch()
    for photo, individual, status, matched in sightings:
        photo_id = photo * 8
        batch.photos.append(
            PhotoRow(
                photo_id, f"s/{photo}.jpg", 1, 1, 8, 8, None, None, None, None, None, None, "left", "body"
            )
        )
        batch.vectors.append(np.zeros(2, dtype=np.float32))
        batch.sightings.append(
            SightingRow(
                photo_id, individual, status, 0.5, None if matched is None else matched * 8, None, None
            )
        )
        known = {row.individual_id for row in batch.individuals}
        if individual not in known and store.resolve_individual(individual) is None:
            batch.individuals.append(IndividualRow(individual, int(individual[3:]), "left", "body", photo_id))
    store.write_batch(store.start_run("abcdef123456", 0.9, "test", ["archive"]), "abcdef123456", batch)
    return store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Three individuals: A with photos a1 a2 a3 (a3 in review), B with b1, C with c1."""
    return _catalogue(
        Store.open(tmp_path / "d.duckdb"),
        [("a1", "FP-000001", "new", None), ("a2", "FP-000001", "matched", None),
         ("a3", "FP-000001", "review", None), ("b1", "FP-000002", "new", None),
         ("c1", "FP-000003", "new", None)],
    )  # fmt: skip


def _owner(store: Store, photo: str) -> tuple[str, str]:
    return store.sighting_states([photo * 8])[photo * 8]


def test_confirm_marks_the_sighting_and_records_the_reason(store: Store) -> None:
    decision = decisions.confirm(store, ["s/a3.jpg"], "same scar on the gill cover")
    assert _owner(store, "a3") == ("FP-000001", "confirmed")
    (row,) = [r for r in store.query("decisions").records() if r["decision_id"] == decision]
    assert row["action"] == "confirm" and row["reason"] == "same scar on the gill cover"


def test_reject_moves_the_photo_to_a_new_individual(store: Store) -> None:
    decisions.reject(store, ["a3a3a3a3"], "different spot pattern")
    individual, status = _owner(store, "a3")
    assert individual == "FP-000004" and status == "confirmed"
    assert store.individual_view("FP-000004") == ("left", "body")


def test_merge_moves_sightings_and_keeps_the_old_id_pointing_to_the_survivor(store: Store) -> None:
    decisions.merge(store, "FP-000001", "FP-000002", "tag read on both")
    assert _owner(store, "b1")[0] == "FP-000001"
    assert store.merged_into("FP-000002") == "FP-000001"


def test_different_records_two_entries_apart_changes_nothing_and_undoes(store: Store) -> None:
    before = store.read_only_sql("SELECT * FROM sightings ORDER BY photo_id").rows
    decision = decisions.different(store, "FP-000001", "FP-000002", "different fin rays")
    assert store.ruled_different() == {frozenset(("FP-000001", "FP-000002"))}
    assert store.read_only_sql("SELECT * FROM sightings ORDER BY photo_id").rows == before
    with pytest.raises(FinprintError, match="already recorded as different"):
        decisions.different(store, "FP-000002", "FP-000001", "again")
    with pytest.raises(FinprintError, match="one entry"):
        decisions.different(store, "FP-000001", "FP-000001", "")
    decisions.undo(store, decision)
    assert store.ruled_different() == set()


def test_split_gives_the_photos_one_new_individual(store: Store) -> None:
    decisions.split(store, "FP-000001", ["s/a2.jpg", "s/a3.jpg"], "two fish")
    assert _owner(store, "a2")[0] == _owner(store, "a3")[0] == "FP-000004"
    assert _owner(store, "a1")[0] == "FP-000001"


def test_split_refuses_photos_of_another_individual(store: Store) -> None:
    with pytest.raises(FinprintError, match="not a sighting of FP-000001"):
        decisions.split(store, "FP-000001", ["s/b1.jpg"], "")
    assert _owner(store, "b1")[0] == "FP-000002"


def test_rename_keeps_the_id(store: Store) -> None:
    decisions.rename(store, "FP-000003", "PIT 900228000123", "tag read in the field")
    assert store.resolve_individual("PIT 900228000123") is not None
    assert _owner(store, "c1")[0] == "FP-000003"


def test_decisions_resolve_a_name_or_a_merged_id_to_the_individual(store: Store) -> None:
    decisions.rename(store, "FP-000002", "PIT 42", "tag read")
    decisions.merge(store, "PIT 42", "FP-000003", "same tag")
    assert _owner(store, "c1")[0] == "FP-000002"  # the id, never the name, in sightings
    decisions.rename(store, "FP-000003", "PIT 42b", "merged id: renames the survivor")
    assert store.resolve_individual("PIT 42b") == "FP-000002"
    decisions.link(store, "PIT 42b", "FP-000001", "two flanks")
    assert store.fish_members("FP-000001") == store.fish_members("FP-000002")
    assert len(store.fish_members("FP-000001")) == 2
    decisions.split(store, "PIT 42b", ["s/c1.jpg"], "two fish after all")
    assert _owner(store, "c1")[0] == "FP-000004"
    with pytest.raises(FinprintError, match="already FP-000002"):
        decisions.merge(store, "FP-000003", "PIT 42b", "")


def test_every_decision_can_be_undone_in_reverse_order(store: Store) -> None:
    before = {p: _owner(store, p) for p in ("a1", "a2", "a3", "b1", "c1")}
    first = decisions.merge(store, "FP-000001", "FP-000002", "")
    second = decisions.split(store, "FP-000001", ["s/b1.jpg"], "")
    with pytest.raises(FinprintError, match="undo it first"):
        decisions.undo(store, first)
    assert decisions.undo(store, second) == "split"
    assert decisions.undo(store, first) == "merge"
    assert {p: _owner(store, p) for p in before} == before
    assert store.resolve_individual("FP-000004") is None
    assert store.merged_into("FP-000002") is None


def test_a_decision_is_undone_past_later_ones_that_changed_other_photos_and_entries(store: Store) -> None:
    named = decisions.rename(store, "FP-000001", "PIT 1", "tag read")
    merged = decisions.merge(store, "FP-000003", "FP-000002", "same fish")  # b1 and FP-000002 only
    assert decisions.undo(store, named) == "rename", "the merge changed nothing the rename did"
    assert store.individual_fields(["FP-000001"])["FP-000001"]["name"] is None
    assert _owner(store, "b1")[0] == "FP-000003", "the later merge stands"
    decisions.rename(store, "FP-000001", "PIT 1", "tag read")
    renamed = decisions.rename(store, "FP-000001", "PIT 2", "tag re-read")
    decisions.rename(store, "FP-000003", "PIT 1", "the old tag moved to this fish")
    with pytest.raises(FinprintError, match="'PIT 1', which FP-000003 holds now"):
        decisions.undo(store, renamed)  # it would give FP-000001 back a name another fish holds
    assert decisions.undo(store, merged) == "merge"


def test_unknown_photo_is_named(store: Store) -> None:
    with pytest.raises(FinprintError, match=r"nowhere\.jpg"):
        decisions.confirm(store, ["nowhere.jpg"], "")


@pytest.mark.slow
def test_decisions_survive_a_later_index_run(survey_archive: Path, tmp_path: Path) -> None:
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, [folders[0]])
    with Store.open(settings.db_path) as opened:
        photo = opened.photos_of("FP-000001")[0]
        decisions.reject(opened, [photo[:12]], "not the same fish")
        moved_to = opened.sighting_states([photo])[photo]
    index(settings, folders[:3])
    with Store.open(settings.db_path) as opened:
        assert opened.sighting_states([photo])[photo] == moved_to


def test_merged_and_named_individuals_resolve_to_the_survivor(store: Store) -> None:
    decisions.merge(store, "FP-000001", "FP-000002", "")
    decisions.rename(store, "FP-000001", "PIT 42", "")
    assert store.resolve_individual("FP-000002") == "FP-000001"
    assert store.resolve_individual("PIT 42") == "FP-000001"
    assert store.resolve_individual("FP-999999") is None


def test_link_makes_history_follow_both_flanks(store: Store) -> None:
    decision = decisions.link(store, "FP-000003", "FP-000002", "photographed together, tag 42")
    history = store.query("history", individual_id="FP-000002")
    assert {row["individual_id"] for row in history.records()} == {"FP-000002", "FP-000003"}
    (summary,) = store.query("individual", individual_id="FP-000003").records()
    assert summary["linked"] == ["FP-000002"] and summary["sightings"] == 2
    with pytest.raises(FinprintError, match="already linked"):
        decisions.link(store, "FP-000002", "FP-000003", "")
    decisions.undo(store, decision)
    assert {row["individual_id"] for row in store.query("history", individual_id="FP-000002").records()} == {
        "FP-000002"
    }


def test_an_undone_individuals_number_is_never_given_again(store: Store) -> None:
    first = decisions.reject(store, ["s/a3.jpg"], "spots differ")
    assert _owner(store, "a3")[0] == "FP-000004"
    decisions.undo(store, first)
    assert _owner(store, "a3")[0] == "FP-000001"
    decisions.reject(store, ["s/a3.jpg"], "spots differ after all")
    assert _owner(store, "a3")[0] == "FP-000005"  # FP-000004 once named another decision's fish


def test_undo_is_refused_when_later_photos_were_matched_to_the_fish_it_created(store: Store) -> None:
    decision = decisions.reject(store, ["s/a3.jpg"], "spots differ")
    run_id = store.start_run("abcdef123456", 0.9, "test", ["archive"])
    later = Batch()
    later.photos.append(
        PhotoRow("d1" * 8, "s/d1.jpg", 1, 1, 8, 8, None, None, None, None, None, None, "left", "body")
    )
    later.vectors.append(np.zeros(2, dtype=np.float32))
    later.sightings.append(SightingRow("d1" * 8, "FP-000004", "matched", 0.2, "a3" * 8, None, None))
    store.write_batch(run_id, "abcdef123456", later)
    with pytest.raises(FinprintError, match=r"1 later photo.*merge.*split"):
        decisions.undo(store, decision)
    assert _owner(store, "a3")[0] == "FP-000004" and _owner(store, "d1")[0] == "FP-000004"


@pytest.fixture
def kept_apart(store: Store) -> Store:
    """The three-individual store, plus d1: a photo identification kept apart from A (its nearest
    photo a1) in a new entry FP-000004, waiting in review ("kept apart from FP-000001: same fish?")."""
    return _catalogue(store, [("d1", "FP-000004", "review", "a1")])


def _live_individuals(store: Store) -> int:
    return int(store.read_only_sql("SELECT count(*) FROM individuals WHERE merged_into IS NULL").rows[0][0])


def test_confirming_a_photo_kept_apart_joins_it_to_the_proposed_individual(kept_apart: Store) -> None:
    question = next(r for r in kept_apart.query("review_queue").records() if r["path"] == "s/d1.jpg")
    assert question["question"].startswith("kept apart from FP-000001")
    decision = decisions.confirm(kept_apart, ["s/d1.jpg"], "same fish")
    assert _owner(kept_apart, "d1") == ("FP-000001", "confirmed")
    # Its entry, left with no photo, points to where the photo went: no empty entry.
    assert kept_apart.resolve_individual("FP-000004") == "FP-000001"
    assert not kept_apart.integrity_problems()
    with pytest.raises(FinprintError, match="already confirmed"):
        decisions.confirm(kept_apart, ["s/d1.jpg"], "again")
    decisions.undo(kept_apart, decision)
    assert _owner(kept_apart, "d1") == ("FP-000004", "review")
    assert kept_apart.resolve_individual("FP-000004") == "FP-000004"


def test_rejecting_a_photo_kept_apart_keeps_it_apart_without_a_new_entry(kept_apart: Store) -> None:
    before = _live_individuals(kept_apart)
    decisions.reject(kept_apart, ["s/d1.jpg", "s/d1.jpg"], "spots differ")  # named twice: one answer
    assert _owner(kept_apart, "d1") == ("FP-000004", "confirmed")
    assert _live_individuals(kept_apart) == before
    assert not kept_apart.integrity_problems()
    with pytest.raises(FinprintError, match="already its own individual"):
        decisions.reject(kept_apart, ["s/d1.jpg"], "again")


def test_check_finds_an_entry_left_with_no_photo(store: Store) -> None:
    store.write_batch(
        store.start_run("abcdef123456", 0.9, "test", ["archive"]),
        "abcdef123456",
        Batch(individuals=[IndividualRow("FP-000009", 9, "left", "body", "a1" * 8)]),
    )
    assert any("holding no photo" in problem for problem in store.integrity_problems())


def test_a_name_that_looks_like_an_id_or_names_another_individual_is_refused(store: Store) -> None:
    with pytest.raises(FinprintError, match="looks like a catalogue id"):
        decisions.rename(store, "FP-000001", "FP-000003", "typo")
    decisions.rename(store, "FP-000001", "PIT 900228000123", "tag read")
    with pytest.raises(FinprintError, match="already names FP-000001"):
        decisions.rename(store, "FP-000002", "PIT 900228000123", "same tag?")
    # An id always means its own individual: merging by ids never follows a name.
    decisions.merge(store, "FP-000003", "FP-000002", "one fish")
    assert _owner(store, "b1")[0] == "FP-000003"
    assert not store.integrity_problems()


def test_the_decisions_listing_names_who_decided_and_photos_by_short_ids(store: Store) -> None:
    decisions.reject(store, ["s/a3.jpg"], "spots differ")
    (row,) = store.query("decisions").records()
    assert row["decided_by"] not in (None, "", "-")
    assert row["photos"] == ["a3" * 6]  # 12 characters: enough for every command, short to read
