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
    with pytest.raises(FinprintError, match="invalid setting"):
        load_settings({}, tmp_path / "absent.toml", environ={"FINPRINT_BATCH_SIZE": "many"})
