"""The nightly index end to end with the shipped model: recovery, reruns and bad input."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from catalog.demo import score_catalogue
from catalog.errors import ArchiveNotFound, ModelMismatch, NoPhotosFound, NotAnImage
from catalog.night import index
from catalog.settings import Settings
from catalog.store import Store
from exporters.selection import ExportFilter, photo_rows
from tests.helpers import edit_card, retag_model


@pytest.fixture
def indexed(indexed_copy: Path, survey_archive: Path) -> tuple[Settings, Path]:
    """The survey archive catalogued with the defaults (a copy of the session's, to write to)."""
    return Settings(db_path=indexed_copy), survey_archive


def test_default_model_recovers_the_generated_individuals(indexed: tuple[Settings, Path]) -> None:
    settings, archive = indexed
    with Store.open(settings.db_path, read_only=True) as store:
        scores = score_catalogue(store, archive)
    assert scores.true_individuals >= 20
    assert scores.pairwise_precision >= 0.95, scores
    assert scores.pairwise_recall >= 0.8, scores


def test_rerun_with_nothing_new_catalogues_nothing(indexed: tuple[Settings, Path]) -> None:
    settings, archive = indexed
    with Store.open(settings.db_path, read_only=True) as store:
        before = photo_rows(store, ExportFilter()).rows
    result = index(settings, [archive])
    assert result.photos_new == 0 and result.files_unchanged == result.files_seen > 0
    with Store.open(settings.db_path, read_only=True) as store:
        assert photo_rows(store, ExportFilter()).rows == before


@pytest.mark.slow
def test_new_night_adds_only_new_photos_and_keeps_ids(survey_archive: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    for folder in folders[:3]:
        shutil.copytree(folder, archive / folder.name)
    settings = Settings(db_path=tmp_path / "c.duckdb")
    first = index(settings, [archive])
    with Store.open(settings.db_path, read_only=True) as store:
        night_one = {row["path"]: row["individual_id"] for row in photo_rows(store, ExportFilter()).records()}
    for folder in folders[3:]:
        shutil.copytree(folder, archive / folder.name)
    graphs = settings.db_path.with_name(settings.db_path.name + ".hnsw")
    assert (graphs / "manifest.json").is_file()  # night two extends the saved graphs
    second = index(settings, [archive])
    assert second.files_unchanged == first.photos_new
    assert second.photos_new > 0 and second.matched > 0
    with Store.open(settings.db_path, read_only=True) as store:
        night_two = {row["path"]: row["individual_id"] for row in photo_rows(store, ExportFilter()).records()}
    # Nothing catalogued on night one changed identity on night two.
    assert {p: night_two[p] for p in night_one} == night_one


def test_same_photo_in_two_folders_is_one_photo_with_two_paths(survey_archive: Path, tmp_path: Path) -> None:
    source = next(survey_archive.rglob("*.jpg"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(source, tmp_path / "a" / "x.jpg")
    shutil.copy(source, tmp_path / "b" / "y.jpg")
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [tmp_path / "a", tmp_path / "b"])
    assert result.photos_new == 1 and result.duplicate_paths == 1


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArchiveNotFound, match="nowhere"):
        index(Settings(db_path=tmp_path / "c.duckdb"), [tmp_path / "nowhere"])


def test_empty_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    with pytest.raises(NoPhotosFound, match="empty"):
        index(Settings(db_path=tmp_path / "c.duckdb"), [tmp_path / "empty"])


def test_non_image_file_given_by_name_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(NotAnImage, match=r"notes\.txt"):
        index(Settings(db_path=tmp_path / "c.duckdb"), [notes])


def test_corrupt_photos_are_recorded_and_the_catalogue_kept(
    indexed: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, _ = indexed
    db = tmp_path / "copy.duckdb"
    shutil.copy(settings.db_path, db)
    settings = replace(settings, db_path=db)
    with Store.open(db, read_only=True) as store:
        before = photo_rows(store, ExportFilter()).rows
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    (bad / "text.jpg").write_text("this is not a photo")
    (bad / "empty.jpg").write_bytes(b"")
    result = index(settings, [bad])
    assert sorted(Path(e.path).name for e in result.errors) == [
        "empty.jpg",
        "text.jpg",
        "truncated.jpg",
    ]
    assert all(e.reason for e in result.errors)
    with Store.open(db, read_only=True) as store:
        assert photo_rows(store, ExportFilter()).rows == before
        assert len(store.query("run_errors", run_id=result.run_id).rows) == 3


def test_another_model_is_refused_on_an_existing_catalogue(
    indexed: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, archive = indexed
    other = tmp_path / "other.onnx"
    retag_model(settings.model_path, other, "ffffffffffff")
    with pytest.raises(ModelMismatch, match="ffffffffffff"):
        index(replace(settings, model_path=other), [archive])


@pytest.mark.slow
def test_a_model_trained_only_on_synthetic_fish_warns(indexed: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, archive = indexed
    folder = sorted(p for p in archive.iterdir() if p.is_dir())[0]
    drawn_only = tmp_path / "drawn-only.onnx"
    edit_card(settings.model_path, drawn_only, lambda card: card["trained_on"].update(synthetic_only=True))
    warned = index(replace(settings, db_path=tmp_path / "w.duckdb", model_path=drawn_only), [folder])
    assert any("synthetic fish" in w and "finprint train" in w for w in warned.warnings)
    # The shipped model has seen real animals: no such warning.
    quiet = index(replace(settings, db_path=tmp_path / "q.duckdb"), [folder])
    assert not any("synthetic fish" in w for w in quiet.warnings)


def test_matches_carry_the_calibrated_probability(indexed: tuple[Settings, Path]) -> None:
    settings, _ = indexed
    with Store.open(settings.db_path, read_only=True) as store:
        rows = store.read_only_sql(
            "SELECT status, distance, probability FROM sightings WHERE distance IS NOT NULL"
        ).rows
    assert rows and all(0.0 <= probability <= 1.0 for _, _, probability in rows)
    matched = [p for status, _, p in rows if status == "matched"]
    assert matched and min(matched) > 0.5


def test_a_photo_whose_embedding_is_not_finite_is_an_error_row_not_a_fish(tmp_path: Path) -> None:
    from catalog.decode import DecodedPhoto
    from catalog.night import RunResult
    from catalog.night.tonight import drop_non_finite
    from catalog.photos import FoundFile
    from catalog.store import Batch

    def decoded(name: str) -> DecodedPhoto:
        found = FoundFile(tmp_path / name, 1, 1)
        return DecodedPhoto(found, tmp_path, name * 8, np.zeros(1), 1, 1, None, None)  # type: ignore[arg-type]

    fresh = [decoded("a"), decoded("b"), decoded("c")]
    vectors = np.array([[0.6, 0.8], [np.nan, 0.0], [1.0, np.inf]], dtype=np.float32)
    known = {item.photo_id for item in fresh}
    batch, result = Batch(), RunResult(1, "m", 0.5, [])
    kept, kept_vectors = drop_non_finite(fresh, vectors, known, batch, result)
    assert [item.photo_id for item in kept] == ["a" * 8]
    assert np.array_equal(kept_vectors, vectors[:1])
    assert [Path(error.path).name for error in batch.errors] == ["b", "c"]
    assert all("non-finite embedding" in e.reason for e in result.errors)
    assert known == {"a" * 8}  # the others are tried again next night


def test_a_path_pattern_that_fits_no_photo_is_refused_before_anything_is_written(
    survey_archive: Path, tmp_path: Path
) -> None:
    from catalog.errors import FinprintError

    db = tmp_path / "c.duckdb"
    photos = sum(1 for _ in survey_archive.rglob("*.jpg"))
    wrong = Settings(db_path=db, path_pattern="{site}/{date}/{camera}/*")
    with pytest.raises(FinprintError, match=rf"matched 0 of {photos} photos \(e\.g\. .*\.jpg\)"):
        index(wrong, [survey_archive])
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql("SELECT count(*) FROM runs").rows == [(0,)]


@pytest.mark.slow
def test_a_path_pattern_that_fits_some_photos_says_how_many(survey_archive: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(survey_archive, archive)
    odd = archive / "unsorted"
    odd.mkdir()
    shutil.copy(next(survey_archive.rglob("*.jpg")), odd / "stray.jpg")
    photos = sum(1 for _ in archive.rglob("*.jpg"))
    result = index(Settings(db_path=tmp_path / "c.duckdb", path_pattern="{date}_{site}/*"), [archive])
    assert any(f"matched {photos - 1} of {photos} photos" in w and "stray.jpg" in w for w in result.warnings)


def test_ctrl_c_marks_the_run_interrupted_at_once(survey_archive: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index(Settings(db_path=db, batch_size=8), [survey_archive], on_progress=interrupt)
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql("SELECT status FROM runs").rows == [("interrupted",)]


def _noise_photos(folder: Path, names: list[str], seed: int = 0) -> None:
    """Small photos of random texture (never blank), one per name."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (40, 64, 3), dtype=np.uint8)).save(folder / name)


def test_the_next_batch_is_embedded_while_this_one_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from catalog.embed import Embedder

    _noise_photos(tmp_path / "2024-06-01_Site", [f"IMG_{i}.jpg" for i in range(6)])
    second_batch_embedding = threading.Event()
    embedded = {"batches": 0}
    real_embed, real_write = Embedder.embed, Store.write_batch

    def embed(self: Embedder, tensors: np.ndarray) -> np.ndarray:
        embedded["batches"] += 1
        if embedded["batches"] == 2:
            second_batch_embedding.set()
        return real_embed(self, tensors)

    overlapped: list[bool] = []

    def write_batch(self: Store, *args: object, **kwargs: object) -> None:
        if not overlapped:
            # Written in turn, the first batch would wait here for an embedding that comes after it.
            overlapped.append(second_batch_embedding.wait(timeout=10))
        real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Embedder, "embed", embed)
    monkeypatch.setattr(Store, "write_batch", write_batch)
    result = index(Settings(db_path=tmp_path / "c.duckdb", batch_size=2, verify=False), [tmp_path])
    assert overlapped == [True]
    assert result.photos_new == 6 and embedded["batches"] == 3


def test_a_copy_of_a_photo_the_network_could_not_embed_is_tried_itself_in_the_next_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the next batch decoded before this one's vectors were checked, the copy would be
    filed as another path of a photo that was never catalogued."""
    from catalog.embed import Embedder

    folder = tmp_path / "2024-06-01_Site"
    _noise_photos(folder, ["IMG_0.jpg", "IMG_1.jpg", "IMG_3.jpg"])
    poisoned = folder / "IMG_1.jpg"
    shutil.copy(poisoned, folder / "IMG_2.jpg")
    from catalog.preprocess import preprocess

    poisoned_tensor = preprocess(poisoned, Embedder(Settings().model_path).card.input)
    real_embed = Embedder.embed

    def embed(self: Embedder, tensors: np.ndarray) -> np.ndarray:
        vectors = real_embed(self, tensors)
        vectors[[np.array_equal(tensor, poisoned_tensor) for tensor in tensors]] = np.nan
        return vectors

    monkeypatch.setattr(Embedder, "embed", embed)
    result = index(Settings(db_path=tmp_path / "c.duckdb", batch_size=2, verify=False), [tmp_path])
    assert sorted(Path(e.path).name for e in result.errors) == ["IMG_1.jpg", "IMG_2.jpg"]
    assert result.photos_new == 2 and result.duplicate_paths == 0
    with Store.open(tmp_path / "c.duckdb", read_only=True) as store:
        paths = [Path(row["path"]).name for row in photo_rows(store, ExportFilter()).records()]
    assert sorted(paths) == ["IMG_0.jpg", "IMG_3.jpg"]


@pytest.mark.slow
def test_a_card_edited_without_a_new_model_version_is_noticed(survey_archive: Path, tmp_path: Path) -> None:
    from catalog.errors import FinprintError

    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, [folders[0]])
    stricter = tmp_path / "stricter.onnx"
    edit_card(settings.model_path, stricter, lambda card: card.update(threshold=card["threshold"] * 0.9))
    said = index(replace(settings, model_path=stricter), [folders[1]])
    assert any("card changed since this catalogue last used it (threshold)" in w for w in said.warnings)
    renormalised = tmp_path / "renormalised.onnx"
    edit_card(settings.model_path, renormalised, lambda card: card["input"].update(mean=[0.5, 0.5, 0.5]))
    with pytest.raises(FinprintError, match=r"\(input\), but its model_version did not.*finprint reindex"):
        index(replace(settings, model_path=renormalised), [folders[2]])


def _lay_out(surveys: list[Path], folder: Path) -> list[Path]:
    for survey in surveys:
        shutil.copytree(survey, folder / survey.name)
    return sorted(folder.rglob("*.jpg"))


def test_a_catalogue_holds_one_species_and_leaves_another_species_folder_out(
    survey_archive: Path, tmp_path: Path
) -> None:
    from catalog.errors import FinprintError
    from catalog.settings import load_settings

    surveys = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    archive = tmp_path / "archive"
    pattern = "{species}/{date}_{site}/*"
    db = tmp_path / "c.duckdb"
    # The first night finds nyala only: that becomes the catalogue's species, kept for later nights.
    nyala = _lay_out(surveys[:2], archive / "nyala")
    settings = load_settings(environ={"FINPRINT_PATH_PATTERN": pattern, "FINPRINT_DB_PATH": str(db)})
    first = index(settings, [archive])
    assert any("species_folder is now 'nyala'" in w for w in first.warnings)
    zebra = _lay_out(surveys[2:3], archive / "zebra")
    later = index(Settings(db_path=db), [archive])
    left_out = f"{len(zebra)} photo(s) under other species' folders were left out (zebra ({len(zebra)}))"
    assert any(left_out in w for w in later.warnings)
    with Store.open(db, read_only=True) as store:
        assert store.stored_settings()["species_folder"] == "nyala"
        paths = {row[0] for row in store.read_only_sql("SELECT path FROM photo_paths").rows}
        exported = photo_rows(store, ExportFilter())
    assert paths == {str(p) for p in nyala}
    assert len(exported.rows) == len(nyala)
    # Two species on a new catalogue's first night, none chosen: refused before anything is written.
    fresh = tmp_path / "fresh.duckdb"
    with pytest.raises(
        FinprintError, match=rf"names 2 species tonight: nyala \({len(nyala)} photos\), zebra"
    ):
        index(Settings(db_path=fresh, path_pattern=pattern), [archive])
    with Store.open(fresh, read_only=True) as store:
        assert store.read_only_sql("SELECT count(*) FROM runs").rows == [(0,)]
