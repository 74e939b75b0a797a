"""The night's grouping: photos of one animal gathered by appearance and decided as one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from catalog.encounters import average_linkage_groups, decide_group
from catalog.night import RunResult, index
from catalog.offline.metrics import clustering_scores
from catalog.settings import Settings
from catalog.store import Store, TonightPhoto
from catalog.synthetic import make_fish, photograph
from exporters.selection import ExportFilter, photo_rows
from tests.helpers import die_after_batches
from tests.test_nightly import _catalogue_rows


def _safe_threshold(truth: dict[str, str]) -> float:
    """A distance under which almost no two different fish of this archive fall (the 2nd
    percentile of their distances under the shipped model), while single photos of one fish often
    do not: embeddings alone then split fish more than they mix them, which is where the night's
    groups help. Taken from the photos, not a constant, so it holds for any shipped model."""
    from catalog.embed import Embedder
    from catalog.preprocess import preprocess
    from catalog.settings import DEFAULT_MODEL_PATH

    embedder = Embedder(DEFAULT_MODEL_PATH)
    paths = sorted(truth)
    vectors = embedder.embed(np.stack([preprocess(Path(path), embedder.card.input) for path in paths]))
    fish = np.asarray([truth[path] for path in paths])
    distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    return float(np.percentile(distances[fish[:, None] != fish[None, :]], 2))


def _unit(*rows: list[float]) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_two_tight_clusters_are_two_groups_and_a_loner_none() -> None:
    vectors = _unit([1, 0, 0.01], [1, 0.02, 0], [0, 1, 0.01], [0.02, 1, 0], [0, 0, 1])
    assert average_linkage_groups(vectors, 0.2) == [[0, 1], [2, 3]]


def test_a_chain_of_look_alikes_does_not_become_one_group() -> None:
    # A~B and B~C under the threshold, A and C far apart: single linkage would join all three.
    angles = np.radians([0.0, 10.0, 20.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    pair = float(np.linalg.norm(vectors[0] - vectors[1]))
    far = float(np.linalg.norm(vectors[0] - vectors[2]))
    threshold = pair * 1.2
    assert far > threshold
    groups = average_linkage_groups(vectors, threshold)
    assert [0, 1, 2] not in groups and len(groups) == 1


# The catalogue's threshold and review band in these tests.
BY_DISTANCE = (0.3, 0.03)


def _photo(photo_id: str, individual: str, status: str) -> TonightPhoto:
    return TonightPhoto(photo_id, "left", "body", None, None, individual, status)


def test_a_group_on_two_catalogued_fish_or_touched_by_a_person_is_left_alone() -> None:
    tonight = {"FP-000009"}
    two_known = [_photo("a", "FP-000001", "matched"), _photo("b", "FP-000002", "matched")]
    assert decide_group(two_known, [{}, {}], tonight, *BY_DISTANCE) is None
    confirmed = [_photo("a", "FP-000009", "new"), _photo("b", "FP-000009", "confirmed")]
    assert decide_group(confirmed, [{}, {}], tonight, *BY_DISTANCE) is None


def test_a_group_near_one_catalogued_fish_on_average_joins_it() -> None:
    tonight = {"FP-000008", "FP-000009"}
    photos = [_photo("a", "FP-000008", "new"), _photo("b", "FP-000009", "review")]
    near = [{"FP-000001": 0.2, "FP-000002": 0.5}, {"FP-000001": 0.22}]
    decision = decide_group(photos, near, tonight, *BY_DISTANCE)
    assert decision is not None and decision.keep == "FP-000001" and set(decision.photo_ids) == {"a", "b"}
    # In the review band on average: a person decides.
    assert decide_group(photos, [{"FP-000001": 0.29}, {"FP-000001": 0.3}], tonight, *BY_DISTANCE) is None
    # As near a second catalogued fish: a person decides.
    both = [{"FP-000001": 0.2, "FP-000002": 0.25}, {"FP-000001": 0.2, "FP-000002": 0.3}]
    assert decide_group(photos, both, tonight, *BY_DISTANCE) is None


def test_one_photos_match_is_not_carried_over_a_group_that_looks_elsewhere() -> None:
    tonight = {"FP-000009"}
    photos = [_photo("a", "FP-000001", "matched"), _photo("b", "FP-000009", "new")]
    # The matched photo is near FP-000001, the rest of the group far: the mean is past the band.
    assert decide_group(photos, [{"FP-000001": 0.25}, {"FP-000001": 0.6}], tonight, *BY_DISTANCE) is None
    # Near enough on average (inside the review band): the group follows its matched photo.
    decision = decide_group(photos, [{"FP-000001": 0.25}, {"FP-000001": 0.33}], tonight, *BY_DISTANCE)
    assert decision is not None and decision.keep == "FP-000001" and decision.photo_ids == ("b",)


def test_a_new_animal_split_tonight_goes_to_the_individual_holding_most_of_it() -> None:
    tonight = {"FP-000008", "FP-000009"}
    photos = [
        _photo("a", "FP-000009", "new"),
        _photo("b", "FP-000008", "new"),
        _photo("c", "FP-000009", "new"),
    ]
    decision = decide_group(photos, [{}, {}, {}], tonight, *BY_DISTANCE)
    assert decision is not None and decision.keep == "FP-000009" and decision.photo_ids == ("b",)


def _night_archive(root: Path, fish_count: int, nights: int, shots: int, seed: int) -> dict[str, str]:
    """Each fish photographed `shots` times a night (left flank, body), one folder a night."""
    rng = np.random.default_rng(seed)
    fishes = [make_fish(f"n{number}", 7_000 + seed * 100 + number) for number in range(fish_count)]
    truth = {}
    for night in range(nights):
        folder = root / f"2024-07-{night + 1:02d}_Reef"
        folder.mkdir(parents=True)
        for fish in fishes:
            for shot in range(shots):
                path = folder / f"IMG_{fish.fish_id}_{shot}_left_body.jpg"
                photograph(fish, "left", "body", rng).save(path, quality=90)
                truth[str(path)] = fish.fish_id
    return truth


def _scores(db: Path, truth: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of the automatic decisions (a photo in review stays alone)."""
    with Store.open(db, read_only=True) as store:
        rows = photo_rows(store, ExportFilter())
    column = {name: rows.columns.index(name) for name in ("path", "individual_id", "status")}
    truths = [truth[row[column["path"]]] for row in rows.rows]
    found = [
        row[column["path"]] if row[column["status"]] == "review" else row[column["individual_id"]]
        for row in rows.rows
    ]
    scores = clustering_scores(truths, found)
    return scores.pairwise_precision, scores.pairwise_recall


@pytest.mark.slow
def test_deciding_the_nights_groups_recovers_more_resightings_at_no_cost_in_precision(tmp_path: Path) -> None:
    truth = _night_archive(tmp_path / "archive", fish_count=8, nights=3, shots=5, seed=11)
    folders = sorted((tmp_path / "archive").iterdir())
    # Embedding alone at a threshold where single photos often fall in the review band.
    alone = Settings(
        db_path=tmp_path / "alone.duckdb",
        verify=False,
        distance_threshold=_safe_threshold(truth),
        group_encounters=False,
    )
    grouped = replace(alone, db_path=tmp_path / "grouped.duckdb", group_encounters=True)
    for settings in (alone, grouped):
        for folder in folders:
            index(settings, [folder])
    precision_alone, recall_alone = _scores(alone.db_path, truth)
    precision_grouped, recall_grouped = _scores(grouped.db_path, truth)
    assert precision_grouped >= precision_alone
    assert recall_grouped > recall_alone + 0.03
    with Store.open(grouped.db_path, read_only=True) as store:
        actions = store.read_only_sql("SELECT DISTINCT action, reason FROM decisions").rows
    assert actions and all(
        action == "group" and reason.startswith("automatic:") for action, reason in actions
    )


def test_two_fish_photographed_in_the_same_minute_stay_two(tmp_path: Path) -> None:
    truth = _night_archive(tmp_path / "archive", fish_count=2, nights=1, shots=4, seed=3)
    settings = Settings(
        db_path=tmp_path / "c.duckdb", verify=False, distance_threshold=_safe_threshold(truth)
    )
    index(settings, [tmp_path / "archive"])
    with Store.open(settings.db_path, read_only=True) as store:
        rows = photo_rows(store, ExportFilter())
    column = {name: rows.columns.index(name) for name in ("path", "individual_id")}
    fish_of: dict[str, set[str]] = {}
    for row in rows.rows:
        fish_of.setdefault(row[column["individual_id"]], set()).add(truth[row[column["path"]]])
    assert all(len(fishes) == 1 for fishes in fish_of.values())


def _grouped_night(tmp_path: Path) -> tuple[Settings, dict[str, list[tuple[object, ...]]], int]:
    """One night of 3 fish x 5 shots indexed without interruption in batches of 4: its settings,
    its catalogue's rows (the reference a resumed night must reach) and its photo count."""
    truth = _night_archive(tmp_path / "archive", fish_count=3, nights=1, shots=5, seed=11)
    settings = Settings(
        db_path=tmp_path / "reference.duckdb",
        verify=False,
        distance_threshold=_safe_threshold(truth),
        batch_size=4,
    )
    index(settings, [tmp_path / "archive"])
    reference = _catalogue_rows(settings.db_path)
    assert any(row[0] == "group" for row in reference["decisions"]), "nothing grouped: the test shows nothing"
    return settings, reference, len(truth)


def _killed_then_rerun(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deaths: set[int]
) -> tuple[Path, RunResult]:
    """The same night into a fresh catalogue, killed after each committed batch in `deaths`
    (one run per death), then run to its end: the catalogue and the last run's result."""
    killed = replace(settings, db_path=tmp_path / "killed.duckdb")
    restore = die_after_batches(monkeypatch, deaths)
    for _ in deaths:
        with pytest.raises(KeyboardInterrupt):
            index(killed, [tmp_path / "archive"])
    restore()
    return killed.db_path, index(killed, [tmp_path / "archive"])


@pytest.mark.slow
def test_a_night_killed_between_its_batches_groups_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, reference, _ = _grouped_night(tmp_path)
    # Dies after its second committed batch, then again after one more.
    killed, _ = _killed_then_rerun(settings, tmp_path, monkeypatch, {2, 3})
    assert _catalogue_rows(killed) == reference


@pytest.mark.slow
def test_a_night_killed_after_its_last_batch_is_finished_by_a_rerun_with_nothing_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.night import run

    settings, reference, photos = _grouped_night(tmp_path)
    # A quiet rerun (nothing new, no night to finish) never builds the identification state.
    real = run.RunIdentification
    monkeypatch.setattr(run, "RunIdentification", None)
    quiet = index(settings, [tmp_path / "archive"])
    assert (quiet.photos_new, quiet.files_unchanged) == (0, photos)
    monkeypatch.setattr(run, "RunIdentification", real)
    # 15 photos in batches of 4: dies right after the fourth and last, before the night's end.
    killed, again = _killed_then_rerun(settings, tmp_path, monkeypatch, {4})
    assert again.photos_new == 0
    assert _catalogue_rows(killed) == reference


@pytest.mark.slow
def test_undoing_the_nights_group_decisions_gives_back_the_per_photo_catalogue(tmp_path: Path) -> None:
    from catalog.decisions import undo

    truth = _night_archive(tmp_path / "archive", fish_count=3, nights=1, shots=5, seed=11)
    grouped = Settings(
        db_path=tmp_path / "grouped.duckdb", verify=False, distance_threshold=_safe_threshold(truth)
    )
    alone = replace(grouped, db_path=tmp_path / "alone.duckdb", group_encounters=False)
    for settings in (grouped, alone):
        index(settings, [tmp_path / "archive"])
    with Store.open(grouped.db_path) as store:
        decisions = [
            row[0] for row in store.read_only_sql("SELECT decision_id FROM decisions ORDER BY 1").rows
        ]
        assert decisions, "nothing grouped: the test shows nothing"
        for decision_id in reversed(decisions):
            assert undo(store, decision_id) == "group"
    query = "SELECT photo_id, individual_id, status FROM sightings ORDER BY 1"
    with Store.open(grouped.db_path, read_only=True) as store:
        undone = store.read_only_sql(query).rows
        merged = store.read_only_sql("SELECT count(*) FROM individuals WHERE merged_into IS NOT NULL").rows
    with Store.open(alone.db_path, read_only=True) as store:
        assert undone == store.read_only_sql(query).rows
    assert merged == [(0,)]


@pytest.mark.slow
def test_a_night_resumed_after_a_kill_leaves_what_a_person_decided_in_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog import encounters
    from catalog.decisions import link

    settings, _, _ = _grouped_night(tmp_path)
    # Killed after its last batch, before its groups.
    killed = replace(settings, db_path=tmp_path / "killed.duckdb")
    restore = die_after_batches(monkeypatch, {4})
    with pytest.raises(KeyboardInterrupt):
        index(killed, [tmp_path / "archive"])
    restore()
    with Store.open(killed.db_path) as store:
        owners = dict(store.read_only_sql("SELECT photo_id, individual_id FROM sightings ORDER BY 1").rows)
        photo = next(iter(owners))
        owner = owners[photo]
        keep, other = sorted({e for e in owners.values() if e != owner})[:2]
        # A person links the entry that holds a photo with another fish's entry...
        link(store, owner, other, "the left and right flank of one fish, seen together")

    # ...and the resumed night's groups would move that photo to a third entry.
    def moving(*args: object, **kwargs: object) -> list[encounters.GroupDecision]:
        return [encounters.GroupDecision(keep, (photo,), "tonight's photos of one animal")]

    monkeypatch.setattr(encounters, "group_tonight", moving)
    index(killed, [tmp_path / "archive"])
    with Store.open(killed.db_path, read_only=True) as store:
        assert store.sighting_states([photo])[photo][0] == owner, "the linked entry keeps its photo"
        assert set(store.fish_members(owner)) == {owner, other}, "the link stands"
