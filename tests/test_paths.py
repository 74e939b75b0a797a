"""Catalogued paths are absolute: any working folder, cron or a colleague finds the same photos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from catalog.night import index
from catalog.settings import Settings
from catalog.store import Store


def _paths(db: Path) -> list[str]:
    with Store.open(db, read_only=True) as store:
        return [row[0] for row in store.read_only_sql("SELECT path FROM photo_paths ORDER BY 1").rows]


@pytest.fixture()
def two_surveys(survey_archive: Path, tmp_path: Path) -> Path:
    archive = tmp_path / "data" / "field"
    for folder in sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2]:
        shutil.copytree(folder, archive / folder.name)
    return archive


@pytest.mark.slow
def test_the_same_archive_indexed_from_two_folders_is_catalogued_once(
    two_surveys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(db_path=tmp_path / "c.duckdb", verify=False)
    monkeypatch.chdir(tmp_path / "data")
    first = index(settings, [Path("field")])
    paths = _paths(settings.db_path)
    assert paths and all(os.path.isabs(path) for path in paths)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = index(settings, [Path("../data/field")])
    assert _paths(settings.db_path) == paths
    assert again.photos_new == 0 and again.duplicate_paths == 0 and again.files_unchanged == first.files_seen


@pytest.mark.slow
def test_a_catalogue_with_relative_paths_gets_them_absolute_without_reading_a_photo_again(
    two_surveys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(db_path=tmp_path / "c.duckdb", verify=False)
    index(settings, [two_surveys])
    # As catalogues were written before: paths as typed, relative to where the run started.
    monkeypatch.chdir(tmp_path / "data")
    with Store.open(settings.db_path) as store:
        store._con.execute(
            "UPDATE photo_paths SET path = replace(path, $prefix, '')", {"prefix": f"{tmp_path}/data/"}
        )
    assert not any(os.path.isabs(path) for path in _paths(settings.db_path))
    rerun = index(settings, [Path("field")])
    assert rerun.photos_new == 0 and rerun.files_unchanged == rerun.files_seen and rerun.paths_missing == 0
    assert all(path.startswith(str(tmp_path / "data" / "field")) for path in _paths(settings.db_path))


def test_a_photo_named_by_a_relative_path_is_found(
    two_surveys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(db_path=tmp_path / "c.duckdb", verify=False)
    index(settings, [two_surveys])
    some_photo = _paths(settings.db_path)[0]
    monkeypatch.chdir(Path(some_photo).parent)
    with Store.open(settings.db_path, read_only=True) as store:
        assert store.resolve_photo(Path(some_photo).name) is not None
        assert store.resolve_photo("no-such-photo.jpg") is None
