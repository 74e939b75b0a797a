"""Property-based checks: path parsing and identification invariants hold for any input."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.identify import Identifier
from catalog.photos import PathPattern, parse_path_fields

# Names a field worker might type: no "/" (a folder separator) and not only spaces.
name = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() == s and s not in (".", ".."))


@given(day=st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31)), site=name, camera=name)
def test_pattern_fields_round_trip(day: date, site: str, camera: str) -> None:
    pattern = PathPattern("{date}/{site}/{camera}/*")
    fields = pattern.fields(f"{day.isoformat()}/{site}/{camera}/IMG_0001.jpg")
    assert fields is not None
    assert (fields.survey_date, fields.site, fields.camera) == (day, site, camera)


@given(parts=st.lists(name, min_size=1, max_size=5))
def test_any_path_parses_without_raising(parts: list[str]) -> None:
    from pathlib import Path

    root = Path("/archive")
    fields = parse_path_fields(root.joinpath(*parts), root)
    assert fields.side in (None, "left", "right")
    assert fields.crop in (None, "head", "body")


@settings(deadline=None, max_examples=30)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(1, 60),
    threshold=st.floats(0.05, 2.0),
)
def test_every_photo_belongs_to_exactly_one_individual(seed: int, count: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    identifier = Identifier(8, threshold, 0.1, 5)
    owner: dict[str, str] = {}
    next_number = 1
    for i, vector in enumerate(vectors):
        decision = identifier.assign("p", vector)
        individual = decision.individual_id
        if individual is None:
            individual, next_number = f"FP-{next_number:06d}", next_number + 1
        else:
            # A match is only ever under the threshold, and to an individual that exists.
            assert decision.distance is not None and decision.distance < threshold
            assert individual in owner.values()
        owner[str(i)] = individual
        identifier.add("p", [str(i)], [individual], vector[None, :])
    assert len(owner) == count == len(identifier)


@settings(deadline=None, max_examples=8)
@given(actions=st.lists(st.tuples(st.sampled_from(["confirm", "reject", "merge", "split", "rename", "link"]),
                                  st.integers(0, 10_000)), min_size=1, max_size=4))  # fmt: skip
@pytest.mark.slow
def test_human_decisions_survive_reruns(actions: list[tuple[str, int]], decided_catalogue: tuple) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    from catalog import decisions
    from catalog.errors import FinprintError
    from catalog.night import index
    from catalog.settings import Settings
    from catalog.store import Store

    source_db, folders = decided_catalogue
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "c.duckdb"
        shutil.copy(source_db, db)
        with Store.open(db) as store:
            for action, pick in actions:
                # A person names an individual by its FP- id, by the name a rename gave it, or by
                # an id that was merged into another: every decision must resolve all three.
                tokens = [
                    token
                    for row in store.read_only_sql(
                        "SELECT individual_id, name FROM individuals ORDER BY 1"
                    ).rows
                    for token in row
                    if token is not None
                ]
                who, other = tokens[pick % len(tokens)], tokens[(pick + 1) % len(tokens)]
                photos = store.photos_of(store.resolve_individual(who) or who)
                try:
                    if action == "confirm" and photos:
                        decisions.confirm(store, [photos[0]], "hypothesis")
                    elif action == "reject" and photos:
                        decisions.reject(store, [photos[0]], "hypothesis")
                    elif action == "merge":
                        decisions.merge(store, other, who, "hypothesis")
                    elif action == "split" and len(photos) > 1:
                        decisions.split(store, who, photos[:1], "hypothesis")
                    elif action == "rename":
                        decisions.rename(store, who, f"tag {pick}", "hypothesis")
                    elif action == "link":
                        decisions.link(store, who, other, "hypothesis")
                except FinprintError:
                    pass  # e.g. merging an individual into itself: refused, nothing changed
                # Sightings only ever point at an individual that exists and was not merged away.
                assert not store.read_only_sql(
                    "SELECT s.photo_id FROM sightings s LEFT JOIN individuals i USING (individual_id) "
                    "WHERE i.individual_id IS NULL OR i.merged_into IS NOT NULL"
                ).rows
            before = store.read_only_sql(
                "SELECT photo_id, individual_id, status FROM sightings ORDER BY 1"
            ).rows
            names = store.read_only_sql(
                "SELECT individual_id, name, merged_into FROM individuals ORDER BY 1"
            ).rows
        index(Settings(db_path=db), folders)  # the same night again, and the next night
        with Store.open(db, read_only=True) as store:
            after = store.read_only_sql(
                "SELECT photo_id, individual_id, status FROM sightings ORDER BY 1"
            ).rows
            assert (
                store.read_only_sql(
                    "SELECT individual_id, name, merged_into FROM individuals ORDER BY 1"
                ).rows[: len(names)]
                == names
            )
    decided = {row[0]: row for row in before}
    assert all(decided[row[0]] == row for row in after if row[0] in decided)
