"""Look-alikes: each individual's nearest other individuals, exactly, for a person to check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from catalog.identify import partition_key
from catalog.lookalikes import lookalikes
from catalog.modelcard import read_card
from catalog.night import index
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.store import Store
from catalog.vocabulary import Sides
from tests.helpers import retag_model, run_finprint


@pytest.fixture(scope="module")
def two_nights(survey_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The drawn survey archive catalogued in two runs: every survey but the last, then the last."""
    surveys = sorted(folder for folder in survey_archive.iterdir() if folder.is_dir())
    db = tmp_path_factory.mktemp("lookalikes") / "c.duckdb"
    index(Settings(db_path=db, verify=False), surveys[:-1])
    index(Settings(db_path=db, verify=False), surveys[-1:])
    return db


def test_each_look_alike_is_the_nearest_photo_pair_of_another_individual_of_the_partition(
    two_nights: Path,
) -> None:
    card = read_card(DEFAULT_MODEL_PATH)
    with Store.open(two_nights, read_only=True) as store:
        photos = store.catalogued_photos(card.model_version)
        vectors = store.vectors_for([p.photo_id for p in photos], card.model_version)
        asked = sorted({p.individual_id for p in photos})[:10]
        found = lookalikes(store, card, asked, top=3)
    members: dict[str, list[tuple[str, np.ndarray]]] = {}
    for photo, vector in zip(photos, vectors, strict=True):
        key = partition_key(photo.side, photo.crop, card.sides == Sides.SPLIT)
        members.setdefault(photo.individual_id, []).append((key, vector))
    assert {f.individual_id for f in found} == set(asked)
    for name in asked:
        (partition,) = {key for key, _ in members[name]}
        # Every pair of photos, one loop at a time: nothing shared with the code under test.
        expected = {
            other: min(float(np.linalg.norm(a - b)) for _, a in members[name] for _, b in theirs)
            for other, theirs in members.items()
            if other != name and theirs[0][0] == partition
        }
        nearest = sorted(expected.items(), key=lambda item: item[1])[:3]
        mine = [f for f in found if f.individual_id == name]
        assert [f.rank for f in mine] == [1, 2, 3][: len(nearest)]
        assert [f.candidate_id for f in mine] == [other for other, _ in nearest]
        np.testing.assert_allclose([f.distance for f in mine], [d for _, d in nearest], atol=1e-4)
        assert {f.photos for f in mine} == {len(members[name])}
        assert [f.candidate_photos for f in mine] == [len(members[other]) for other, _ in nearest]


def test_by_default_the_individuals_the_last_night_created_are_listed(two_nights: Path) -> None:
    result = run_finprint("lookalikes", "--db", str(two_nights), "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = {row["individual"] for row in json.loads(result.stdout)}
    created = run_finprint(
        "sql",
        "SELECT individual_id FROM individuals WHERE created_run = (SELECT max(run_id) FROM runs)",
        "--db",
        str(two_nights),
        "--format",
        "json",
    )
    last_night = {row["individual_id"] for row in json.loads(created.stdout)}
    assert last_night and listed == last_night
    table = run_finprint("lookalikes", sorted(last_night)[0], "--db", str(two_nights), "--top", "2")
    assert table.returncode == 0, table.stderr
    assert "finprint merge LOOK_ALIKE INDIVIDUAL" in table.stdout


def test_an_id_not_in_the_catalogue_or_another_model_is_a_clear_error(
    two_nights: Path, tmp_path: Path
) -> None:
    unknown = run_finprint("lookalikes", "FP-999999", "--db", str(two_nights))
    assert (
        unknown.returncode == 1 and "FP-999999" in unknown.stderr and "finprint individuals" in unknown.stderr
    )
    other = tmp_path / "other.onnx"
    retag_model(DEFAULT_MODEL_PATH, other, "0123456789ab")
    mismatch = run_finprint("lookalikes", "--db", str(two_nights), "--model", str(other))
    assert mismatch.returncode == 1 and "--model" in mismatch.stderr


def test_the_html_report_names_each_new_individuals_first_look_alike(
    two_nights: Path, tmp_path: Path
) -> None:
    page_path = tmp_path / "run.html"
    result = run_finprint("report", "--db", str(two_nights), "--html", str(page_path))
    assert result.returncode == 0, result.stderr
    page = page_path.read_text(encoding="utf-8")
    listed = run_finprint("lookalikes", "--db", str(two_nights), "--top", "1", "--format", "json")
    first = json.loads(listed.stdout)
    assert first
    for row in first:
        cells = f"<td>{row['look_alike']} ({row['distance']:.3f})</td>"
        assert re.search(f"<tr><td>{row['individual']}</td><td>[^<]*</td>{re.escape(cells)}</tr>", page)


def test_last_nights_individuals_include_those_of_its_killed_attempt(
    survey_archive: Path, tmp_path: Path
) -> None:
    surveys = sorted(folder for folder in survey_archive.iterdir() if folder.is_dir())
    db = tmp_path / "c.duckdb"
    index(Settings(db_path=db, verify=False), surveys[:-2])

    def interrupt(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index(Settings(db_path=db, verify=False, batch_size=4), surveys[-2:], on_progress=interrupt)
    index(Settings(db_path=db, verify=False), surveys[-2:])

    def created_by(condition: str) -> set[str]:
        # Those still holding a photo: the night's regrouping may merge one away.
        holding = "individual_id IN (SELECT individual_id FROM sightings)"
        query = f"SELECT individual_id FROM individuals WHERE {condition} AND {holding}"
        result = run_finprint("sql", query, "--db", str(db), "--format", "json")
        return {row["individual_id"] for row in json.loads(result.stdout)}

    killed, finished = created_by("created_run = 2"), created_by("created_run = 3")
    assert killed and finished and not created_by("created_run > 3")
    with Store.open(db, read_only=True) as store:
        assert set(store.individuals_of_last_night()) == killed | finished
