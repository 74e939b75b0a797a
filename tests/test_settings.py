"""Settings precedence: flags > FINPRINT_* environment > finprint.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import FinprintError
from catalog.settings import Settings, load_settings


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path / "absent.toml", environ={})
    assert settings == Settings()


def test_each_source_overrides_the_one_below(tmp_path: Path) -> None:
    toml = tmp_path / "finprint.toml"
    toml.write_text('batch_size = 8\nworkers = 3\ndb_path = "from-file.duckdb"\n')
    env = {"FINPRINT_WORKERS": "5", "FINPRINT_DB_PATH": "from-env.duckdb"}
    settings = load_settings({"db_path": Path("from-flag.duckdb")}, toml, environ=env)
    assert settings.batch_size == 8
    assert settings.workers == 5
    assert settings.db_path == Path("from-flag.duckdb")


def test_unknown_setting_in_file_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "finprint.toml"
    toml.write_text("batchsize = 8\n")
    with pytest.raises(FinprintError, match="batchsize"):
        load_settings({}, toml, environ={})


def test_bad_value_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(FinprintError, match="batch_size from FINPRINT_BATCH_SIZE"):
        load_settings({}, tmp_path / "absent.toml", environ={"FINPRINT_BATCH_SIZE": "many"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("distance_threshold", "nan"),
        ("distance_threshold", "inf"),
        ("distance_threshold", "-0.5"),
        ("review_band_fraction", "nan"),
        ("batch_size", "0"),
        ("batch_size", "1000000000"),
        ("workers", "-1"),
        ("neighbours_k", "0"),
        ("dataset_licence", "all rights reserved"),
    ],
)
def test_out_of_range_settings_name_the_setting_and_its_source(tmp_path: Path, name: str, value: str) -> None:
    toml = tmp_path / "finprint.toml"
    toml.write_text(f'{name} = "{value}"\n', encoding="utf-8")
    with pytest.raises(FinprintError, match=rf"{name} from .*finprint\.toml: must be"):
        load_settings({}, toml, environ={})
    with pytest.raises(FinprintError, match=rf"{name} from FINPRINT_{name.upper()}: must be"):
        load_settings({}, tmp_path / "absent.toml", environ={f"FINPRINT_{name.upper()}": value})
    with pytest.raises(FinprintError, match=rf"{name} from --{name.replace('_', '-')}: must be"):
        load_settings({name: value}, tmp_path / "absent.toml", environ={})


def test_a_threshold_that_matches_every_unit_vector_is_refused(survey_archive: Path, tmp_path: Path) -> None:
    from catalog.pipeline import index

    with pytest.raises(FinprintError, match="would match every photo"):
        index(Settings(db_path=tmp_path / "c.duckdb", distance_threshold=1e300), [survey_archive])
    assert not (tmp_path / "c.duckdb").exists()
