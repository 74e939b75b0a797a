"""Shared fixtures: small generated archives and labelled sets, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.synthetic import generate_archive, generate_labelled
from tests.helpers import copy_catalogue, drawn_once


@pytest.fixture(scope="session")
def survey_archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 fish over 6 surveys: enough re-sightings to measure recovery."""
    root = tmp_path_factory.mktemp("archive")
    drawn_once(request.config, root, generate_archive, n_individuals=20, n_surveys=6, seed=3)
    return root


@pytest.fixture(scope="session")
def labelled_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("labelled")
    generate_labelled(root, n_individuals=6, photos_per_view=3, seed=5)
    return root


@pytest.fixture(scope="session")
def decided_catalogue(
    survey_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Path]]:
    """A catalogue of the first two surveys, and the folders of the first three (one night more)."""
    from catalog.night import index
    from catalog.settings import Settings

    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    db = tmp_path_factory.mktemp("decided") / "c.duckdb"
    index(Settings(db_path=db), folders[:2])
    return db, folders[:3]


@pytest.fixture(scope="session")
def indexed_survey(survey_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole survey archive catalogued once, with the defaults (verified where OpenCV is)."""
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path_factory.mktemp("indexed") / "c.duckdb"
    index(Settings(db_path=db), [survey_archive])
    return db


@pytest.fixture
def indexed_copy(indexed_survey: Path, tmp_path: Path) -> Path:
    """A private copy of the catalogued survey archive (its keypoints and graphs beside it) for a
    test that writes to it: cheaper than indexing the archive again, and just as real."""
    return copy_catalogue(indexed_survey, tmp_path)
