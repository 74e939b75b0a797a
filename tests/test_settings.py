"""Settings precedence: flags > FINPRINT_* environment > finprint.toml > defaults."""

from __future__ import annotations

import json
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
    with pytest.raises(FinprintError, match=rf"{name} from .*finprint\.toml .*: must be"):
        load_settings({}, toml, environ={})
    with pytest.raises(FinprintError, match=rf"{name} from FINPRINT_{name.upper()}: must be"):
        load_settings({}, tmp_path / "absent.toml", environ={f"FINPRINT_{name.upper()}": value})
    with pytest.raises(FinprintError, match=rf"{name} from --{name.replace('_', '-')}: must be"):
        load_settings({name: value}, tmp_path / "absent.toml", environ={})


def test_a_threshold_that_matches_every_unit_vector_is_refused(survey_archive: Path, tmp_path: Path) -> None:
    from catalog.night import index

    with pytest.raises(FinprintError, match="would match every photo"):
        index(Settings(db_path=tmp_path / "c.duckdb", distance_threshold=1e300), [survey_archive])
    assert not (tmp_path / "c.duckdb").exists()


def _site_then_date_night(survey_archive: Path, root: Path, night: int) -> str:
    """Add a night of the survey archive to `root` laid out `<site>/<date>/*.jpg`, which no folder
    convention reads: only a path pattern gives these photos their site and date. Returns the site."""
    import shutil

    folder = sorted(p for p in survey_archive.iterdir() if p.is_dir())[night]
    day, site = folder.name.split("_", 1)
    shutil.copytree(folder, root / site / day)
    return site


@pytest.mark.slow
def test_a_run_without_the_settings_file_decides_and_exports_as_the_archive_was_indexed(
    survey_archive: Path, tmp_path: Path
) -> None:
    from catalog.night import index
    from catalog.settings import with_catalogue_settings
    from catalog.store import Store

    archive = tmp_path / "archive"
    first = _site_then_date_night(survey_archive, archive, 0)
    db = tmp_path / "c.duckdb"
    toml = tmp_path / "station" / "finprint.toml"
    toml.parent.mkdir()
    toml.write_text('path_pattern = "{site}/{date}/*"\nscientific_name = "Tragelaphus angasii"\n')
    index(load_settings({"db_path": db}, toml, environ={}), [archive])
    second = _site_then_date_night(survey_archive, archive, 1)
    # From cron: another folder, no settings file.
    without_file = load_settings({"db_path": db}, tmp_path / "absent.toml", environ={})
    assert without_file.path_pattern is None
    assert index(without_file, [archive]).photos_new > 0
    with Store.open(db, read_only=True) as store:
        sites = store.read_only_sql("SELECT DISTINCT site, survey_date IS NULL FROM photos").rows
        filled, notes = with_catalogue_settings(without_file, store.stored_settings())
    assert sorted(sites) == sorted({(first, False), (second, False)})
    assert filled.scientific_name == "Tragelaphus angasii" and notes == []


@pytest.mark.slow
def test_a_run_given_other_settings_says_so_and_a_flag_lasts_one_run(
    survey_archive: Path, tmp_path: Path
) -> None:
    from catalog.night import index
    from catalog.store import Store

    archive = tmp_path / "archive"
    _site_then_date_night(survey_archive, archive, 0)
    db = tmp_path / "c.duckdb"
    toml = tmp_path / "finprint.toml"
    toml.write_text('path_pattern = "{site}/{date}/*"\nreview_band_fraction = 0.1\n')
    index(load_settings({"db_path": db}, toml, environ={}), [archive])
    _site_then_date_night(survey_archive, archive, 1)
    flagged = load_settings({"db_path": db, "review_band_fraction": 0.2}, toml, environ={})
    notes = [w for w in index(flagged, [archive]).warnings if "review_band_fraction" in w]
    assert len(notes) == 1 and "0.2 (from --review-band-fraction)" in notes[0]
    assert "indexed with 0.1" in notes[0] and "for this run only" in notes[0]
    with Store.open(db, read_only=True) as store:
        assert store.stored_settings() == {"path_pattern": "{site}/{date}/*", "review_band_fraction": 0.1}
    # A finprint.toml merely found in the working folder may be another archive's: not used.
    toml.write_text('path_pattern = "{date}_{site}/*"\nreview_band_fraction = 0.05\n')
    stray = index(load_settings({"db_path": db}, toml, environ={}), [archive])
    notes = [w for w in stray.warnings if "found in the working folder" in w]
    assert len(notes) == 2 and all("the catalogue's value is used" in n for n in notes)
    assert any("finprint settings set review_band_fraction 0.05" in n for n in notes)
    with Store.open(db, read_only=True) as store:
        assert store.stored_settings() == {"path_pattern": "{site}/{date}/*", "review_band_fraction": 0.1}
        assert store.read_only_sql("SELECT count(DISTINCT site) FROM photos WHERE site LIKE '20%'").rows == [
            (0,)
        ]
    # Named with --config (or FINPRINT_CONFIG), the file changes the catalogue for good.
    changed = index(load_settings({"db_path": db}, environ={}, config=toml), [archive])
    [note] = [w for w in changed.warnings if "review_band_fraction" in w]
    assert "kept from now on" in note
    with Store.open(db, read_only=True) as store:
        assert store.stored_settings()["review_band_fraction"] == 0.05
        history = store.query("settings_history").records()
    assert [(r["name"], r["value"]) for r in history if r["name"] == "review_band_fraction"] == [
        ("review_band_fraction", "0.1"),
        ("review_band_fraction", "0.05"),
    ]


def test_config_names_the_settings_file_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc" / "wrasse.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('scientific_name = "Labrus bergylta"\n')
    here = tmp_path / "finprint.toml"
    here.write_text('scientific_name = "Symphodus melops"\n')
    assert load_settings({}, here, environ={}, config=elsewhere).scientific_name == "Labrus bergylta"
    from_env = load_settings({}, here, environ={"FINPRINT_CONFIG": str(elsewhere)})
    assert from_env.scientific_name == "Labrus bergylta"
    assert from_env.source_of("scientific_name") == str(elsewhere)
    with pytest.raises(FinprintError, match=r"absent\.toml: settings file not found.*--config"):
        load_settings({}, here, environ={}, config=tmp_path / "absent.toml")


def test_settings_shows_sets_and_resets_what_the_catalogue_keeps_with_history(tmp_path: Path) -> None:
    from catalog.store import Store
    from tests.helpers import run_finprint

    db = tmp_path / "c.duckdb"
    Store.open(db).close()
    shown = run_finprint("settings", "--db", str(db), "--format", "csv").stdout
    assert "path_pattern,unset,finprint's default" in shown
    assert run_finprint("settings", "set", "path_pattern", "{site}/{date}/*", "--db", str(db)).returncode == 0
    assert (
        run_finprint("settings", "set", "scientific_name", "Labrus bergylta", "--db", str(db)).returncode == 0
    )
    refused = run_finprint("settings", "set", "review_band_fraction", "2", "--db", str(db))
    assert refused.returncode == 1 and "from 0 up to" in refused.stderr
    unknown = run_finprint("settings", "set", "threshold", "0.5", "--db", str(db))
    assert unknown.returncode == 1 and "distance_threshold" in unknown.stderr
    kept = run_finprint("settings", "--db", str(db), "--format", "json").stdout
    rows = {row["name"]: row for row in json.loads(kept)}
    assert rows["path_pattern"]["value"] == "'{site}/{date}/*'"
    assert rows["path_pattern"]["source"] == "finprint settings set"
    assert run_finprint("settings", "reset", "path_pattern", "--db", str(db)).returncode == 0
    history = json.loads(run_finprint("settings", "--history", "--db", str(db), "--format", "json").stdout)
    assert [(h["name"], h["value"]) for h in history] == [
        ("path_pattern", '"{site}/{date}/*"'),
        ("scientific_name", '"Labrus bergylta"'),
        ("path_pattern", None),
    ]
    with Store.open(db, read_only=True) as store:
        assert store.stored_settings() == {"scientific_name": "Labrus bergylta"}
