"""The command line: every command teaches with --help; errors are one line with exit code 1."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from catalog.cli import app
from catalog.errors import FinprintError
from tests.helpers import finprint_in_new_process, run_finprint

runner = CliRunner()


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        # Groups (typer's own click) carry sub-commands.
        if hasattr(command, "commands"):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


ALL_COMMANDS = _command_paths(typer.main.get_command(app))


def test_contract_commands_exist() -> None:
    names = {" ".join(p) for p in ALL_COMMANDS}
    assert {"train", "evaluate", "index", "export", "history", "report", "sql", "demo"} <= names
    assert {"review", "confirm", "reject", "merge", "split", "rename", "undo", "reindex"} <= names


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    # A docstring, not just the option list.
    assert len(result.output.split("Options")[0].strip().splitlines()) >= 3


_run = run_finprint


def test_user_error_is_one_line_with_exit_code_one(tmp_path: Path) -> None:
    result = _run("index", str(tmp_path / "no-such-folder"), "--db", str(tmp_path / "c.duckdb"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'no-such-folder'}: no such folder. Check the path, or mount the disk it is on."
    ]


def test_unknown_individual_is_a_user_error(indexed_survey: Path) -> None:
    result = _run("history", "FP-999999", "--db", str(indexed_survey))
    assert result.returncode == 1 and "FP-999999" in result.stderr


@pytest.mark.slow
def test_index_history_sql_and_export_work_together(survey_archive: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    indexed = _run("index", str(survey_archive), "--db", str(db))
    assert indexed.returncode == 0, indexed.stderr
    assert "finprint index run" in indexed.stdout
    assert f"Creating a new catalogue at {db}" in indexed.stdout
    again = _run("index", str(survey_archive), "--db", str(db))
    assert again.returncode == 0 and "Creating a new catalogue" not in again.stdout
    rows = json.loads(
        _run(
            "sql",
            "SELECT individual_id FROM individuals ORDER BY 1",
            "--db",
            str(db),
            "--format",
            "json",
        ).stdout
    )
    assert rows[0]["individual_id"] == "FP-000001"
    history = _run("history", "FP-000001", "--db", str(db))
    assert history.returncode == 0 and "Timeline" in history.stdout
    out = tmp_path / "photos.csv"
    assert _run("export", "csv", "--db", str(db), "--out", str(out)).returncode == 0
    header = out.read_text().splitlines()[0].split(",")
    assert header[:7] == ["path", "individual_id", "taken_at", "site", "side", "distance", "status"]
    assert len(out.read_text().splitlines()) == 1 + sum(1 for _ in survey_archive.rglob("*.jpg"))
    report = _run("report", "--db", str(db))
    assert report.returncode == 0 and "finprint index run" in report.stdout
    named = json.loads(_run("query", "history", "--param", "individual_id=FP-000001", "--db", str(db),
                            "--format", "json").stdout)  # fmt: skip
    assert named and all(row["status"] in ("new", "matched", "review") for row in named)
    bad = _run("query", "history", "--param", "who=FP-000001", "--db", str(db))
    assert bad.returncode == 1 and "individual_id" in bad.stderr
    listed = _run("individuals", "--db", str(db), "--since", "2100-01-01")
    assert listed.returncode == 0 and "0 individual(s)" in listed.stdout


def test_sql_refuses_writes(indexed_survey: Path) -> None:
    db = indexed_survey
    result = _run("sql", "DELETE FROM sightings", "--db", str(db))
    assert result.returncode == 1 and "read-only" in result.stderr
    count = _run("sql", "SELECT count(*) AS n FROM sightings", "--db", str(db), "--format", "csv")
    assert int(count.stdout.splitlines()[1]) > 0


def test_sql_reaches_no_file_but_the_catalogue(tmp_path: Path) -> None:
    import duckdb

    from catalog.store import Store

    db = tmp_path / "c.duckdb"
    Store.open(db).close()
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE sightings AS SELECT 1 AS n")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for sql", encoding="utf-8")
    escapes = [
        f"COPY (SELECT 1) TO '{tmp_path / 'written.csv'}'",
        f"ATTACH '{other}' AS o (READ_WRITE)",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM glob('{tmp_path}/*')",
        "SET enable_external_access = true",
        "LOAD httpfs",
    ]
    for statement in escapes:
        with Store.open(db, sandboxed=True) as store, pytest.raises(FinprintError) as caught:
            store.read_only_sql(statement)
        assert "\n" not in str(caught.value), statement
    assert not (tmp_path / "written.csv").exists()
    with duckdb.connect(str(other), read_only=True) as con:
        assert con.execute("SELECT n FROM sightings").fetchall() == [(1,)]
    allowed = _run("sql", "SELECT count(*) AS n FROM photos", "--db", str(db), "--format", "csv")
    assert allowed.returncode == 0 and allowed.stdout.splitlines() == ["n", "0"]
    refused = _run("sql", f"SELECT * FROM read_text('{secret}')", "--db", str(db))
    assert refused.returncode == 1 and "reads the catalogue only" in refused.stderr


def test_photo_errors_give_exit_code_two(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = _run("index", str(folder), "--db", str(tmp_path / "c.duckdb"))
    assert result.returncode == 2
    assert "broken.jpg" in result.stderr


@pytest.mark.slow
def test_demo_runs_and_scores_itself(tmp_path: Path) -> None:
    result = _run("demo", str(tmp_path / "demo"), "--individuals", "4", "--surveys", "3")
    assert result.returncode == 0, result.stderr
    assert "pairwise precision" in result.stdout
    assert "Life history" in result.stdout
    # The command it suggests is on one line, ready to copy, however long the path.
    assert f"--db {tmp_path / 'demo' / 'demo.duckdb'}" in result.stdout
    # Again, in the same folder given relative to where the command runs.
    again = _run("demo", "demo", "--individuals", "4", "--surveys", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "pairwise precision" in again.stdout


def test_demo_will_not_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = _run("demo", str(tmp_path))
    assert result.returncode == 1 and "not empty" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("command", ["train", "evaluate", "fit-verification", "synthesize", "demo"])
def test_help_keeps_angle_bracket_placeholders(command: str) -> None:
    # Help is rendered as markdown: a bare <individual> would be taken for an HTML tag and vanish.
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<id>" in result.output or "<site>" in result.output


def test_version_flag_prints_the_version() -> None:
    from catalog import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"finprint {__version__}"


def test_listings_print_csv_and_json_rows_for_scripts(decided_catalogue: tuple[Path, list[Path]]) -> None:
    import csv
    import io

    db, _ = decided_catalogue
    listed = runner.invoke(app, ["individuals", "--db", str(db), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert rows and "individual_id" in rows[0]
    first = rows[0]["individual_id"]
    timeline = runner.invoke(app, ["history", first, "--db", str(db), "--format", "csv"])
    assert timeline.exit_code == 0, timeline.output
    records = list(csv.DictReader(io.StringIO(timeline.output)))
    assert records and len(records) == rows[0]["sightings"]
    for command in (["decisions"], ["review"]):
        result = runner.invoke(app, [*command, "--db", str(db), "--format", "json"])
        assert result.exit_code == 0, result.output
        assert isinstance(json.loads(result.output), list)


@pytest.mark.slow
def test_the_review_queue_names_the_individual_it_proposes(survey_archive: Path, tmp_path: Path) -> None:
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path / "c.duckdb"
    # Embeddings alone at a loose threshold, nights not regrouped: plenty of near misses.
    from catalog.modelcard import read_card
    from catalog.settings import DEFAULT_MODEL_PATH

    loose = 2.0 * read_card(DEFAULT_MODEL_PATH).threshold
    settings = Settings(db_path=db, verify=False, distance_threshold=loose, group_encounters=False)
    index(settings, sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2])
    result = runner.invoke(app, ["review", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    queue = json.loads(result.output)
    assert queue, "the fixture has nothing in review: the test shows nothing"
    for row in queue:
        assert row["proposed"] is not None and len(row["photo"]) == 8
        if row["proposed"] == row["now_in"]:
            assert row["question"] == f"joined {row['proposed']}: is it?"
        else:
            assert row["question"] == f"kept apart from {row['proposed']}: same fish?"
    table = runner.invoke(app, ["review", "--db", str(db)])
    assert table.exit_code == 0 and queue[0]["photo"] in table.output


@pytest.mark.slow
def test_ctrl_c_inside_a_command_says_nothing_finished_is_lost(tmp_path: Path) -> None:
    # Typer turns a KeyboardInterrupt inside a command into a silent exit 130.
    script = (
        "import sys, catalog.night, catalog.cli\n"
        "def interrupted(*args, **kwargs): raise KeyboardInterrupt\n"
        "catalog.night.index = interrupted\n"
        f"sys.argv = ['finprint', 'index', {str(tmp_path)!r}, '--db', {str(tmp_path / 'c.duckdb')!r}]\n"
        "catalog.cli.main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 130
    assert "Interrupted" in result.stderr and "run the same command again" in result.stderr


@pytest.mark.slow
def test_shell_completion_names_commands_and_choices() -> None:
    script = Path(sys.executable).with_name("finprint")
    if not script.is_file():
        pytest.skip("the finprint console script is not installed beside this Python")
    env = {**os.environ, "_FINPRINT_COMPLETE": "complete_bash"}
    commands = subprocess.run(
        [str(script)], env={**env, "COMP_WORDS": "finprint ind", "COMP_CWORD": "1"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert commands.stdout.split() == ["index", "individuals"]
    formats = subprocess.run(
        [str(script)], env={**env, "COMP_WORDS": "finprint export ", "COMP_CWORD": "2"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert {"csv", "dwc", "capture-history"} <= set(formats.stdout.split())


@pytest.mark.slow
def test_config_before_the_command_and_an_export_from_elsewhere_keep_the_archive_species(
    survey_archive: Path, tmp_path: Path
) -> None:
    import zipfile

    station = tmp_path / "station"
    station.mkdir()
    (station / "nyala.toml").write_text('scientific_name = "Tragelaphus angasii"\n')
    db = tmp_path / "nyala.duckdb"
    first = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    indexed = _run("--config", str(station / "nyala.toml"), "index", str(first), "--db", str(db), "--quiet")
    assert indexed.returncode == 0, indexed.stderr
    # Another folder, no settings file: the export still names the species the archive was indexed as.
    elsewhere = tmp_path / "cron"
    elsewhere.mkdir()
    exported = _run("export", "dwc", "--out", str(tmp_path / "dwca.zip"), "--db", str(db), cwd=elsewhere)
    assert exported.returncode == 0, exported.stderr
    occurrences = zipfile.ZipFile(tmp_path / "dwca.zip").read("occurrence.txt").decode("utf-8")
    assert "Tragelaphus angasii" in occurrences and "Symphodus melops" not in occurrences
    missing = _run("--config", str(station / "absent.toml"), "report", "--db", str(db))
    assert missing.returncode == 1 and "absent.toml: settings file not found" in missing.stderr


def test_a_command_line_that_cannot_be_parsed_is_not_the_exit_code_of_unreadable_photos(
    tmp_path: Path,
) -> None:
    from catalog.cli import EXIT_PHOTO_ERRORS, EXIT_USAGE

    unknown_option = _run("index", str(tmp_path), "--no-such-option")
    bad_value = _run("index", str(tmp_path), "--batch-size", "many")
    for result in (unknown_option, bad_value):
        assert result.returncode == EXIT_USAGE != EXIT_PHOTO_ERRORS, result.stderr
        assert "Usage" in result.stderr


def test_index_help_names_the_variable_of_every_setting_it_takes() -> None:
    result = runner.invoke(app, ["index", "--help"], env={"COLUMNS": "400"})
    text = " ".join(result.output.split())
    for variable in ("DB_PATH", "MODEL_PATH", "BATCH_SIZE", "WORKERS", "DISTANCE_THRESHOLD", "VERIFY",
                     "GROUP_ENCOUNTERS"):  # fmt: skip
        assert f"FINPRINT_{variable}" in text


@pytest.mark.slow
def test_writing_into_a_folder_that_does_not_exist_is_one_line_for_every_output(
    survey_archive: Path, tmp_path: Path
) -> None:
    db = tmp_path / "c.duckdb"
    first = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    created = _run("index", str(first), "--db", str(db), "--quiet", "--no-verify")
    # Starting a catalogue is said, even under --quiet: a forgotten --db must not go unnoticed.
    assert (created.returncode, created.stdout, created.stderr) == (
        0,
        "",
        f"Creating a new catalogue at {db}\n",
    )
    quiet = _run("index", str(first), "--db", str(db), "--quiet", "--no-verify")
    # Cron mails any output at all: a night where all is well prints not even a newline.
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    missing = tmp_path / "no-such-folder"
    commands = [
        ("report", "--db", str(db), "--html", str(missing / "run.html")),
        *(("export", kind, "--db", str(db), "--out", str(missing / f"out.{kind}"))
          for kind in ("csv", "json", "parquet", "dwc", "geojson")),
    ]  # fmt: skip
    for command in commands:
        result = _run(*command)
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )
        assert str(missing) in result.stderr
    assert not missing.exists()


def test_a_table_into_a_pipe_keeps_every_id_and_path_on_one_line(
    survey_archive: Path, tmp_path: Path
) -> None:
    import shutil

    first = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    deep = tmp_path / ("a-survey-folder-with-a-long-descriptive-name-" * 3) / first.name
    shutil.copytree(first, deep)
    db = tmp_path / "c.duckdb"
    assert _run("index", str(deep), "--db", str(db), "--quiet", "--no-verify").returncode == 0
    listed = _run("sql", "SELECT photo_id, path FROM photo_paths ORDER BY path", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    paths = sorted(str(p) for p in deep.glob("*.jpg"))
    assert len(str(deep)) > 120
    for path in paths:
        assert any(path in line for line in listed.stdout.splitlines()), path
    individuals = _run("individuals", "--db", str(db))
    assert any("FP-000001" in line for line in individuals.stdout.splitlines())


def test_evaluate_refuses_a_plot_it_cannot_write_before_evaluating(tmp_path: Path) -> None:
    # The folder holds no labelled photos: had evaluation run first, that would be the error.
    plot = tmp_path / "no-such-folder" / "eval.png"
    result = _run("evaluate", str(tmp_path), "--plot", str(plot))
    assert result.returncode == 1
    assert "could not write the plot" in result.stderr and str(plot.parent) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_csv_on_stdout_pipes_into_xargs_and_writes_lists_as_items(indexed_survey: Path) -> None:
    listed = run_finprint("individuals", "--db", str(indexed_survey), "--format", "csv")
    assert listed.returncode == 0, listed.stderr
    assert "\r" not in listed.stdout
    header, *rows = listed.stdout.splitlines()
    columns = header.split(",")
    assert "['" not in listed.stdout  # sites are "a; b", not a Python list
    first = rows[0].split(",")[columns.index("individual_id")]
    piped = subprocess.run(
        f"{sys.executable} -m catalog individuals --db {indexed_survey} --format csv | cut -d, -f1 | "
        f"tail -n +2 | head -1 | xargs {sys.executable} -m catalog history --db {indexed_survey}",
        shell=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert first in piped.stdout


def test_csv_from_every_command_keeps_formulas_as_text_unless_asked(
    indexed_copy: Path, tmp_path: Path
) -> None:
    formula = '=HYPERLINK("http://x")'
    assert run_finprint("rename", "FP-000001", formula, "--db", str(indexed_copy)).returncode == 0
    for args in (["individuals"], ["history", "FP-000001"], ["sql", "SELECT name FROM individuals"]):
        listed = run_finprint(*args, "--db", str(indexed_copy), "--format", "csv").stdout
        assert "'=HYPERLINK" in listed or args[0] == "history", args
        assert "\n=HYPERLINK" not in listed and ",=HYPERLINK" not in listed, args
    sql = ["sql", "SELECT '+SUM(1)' AS site", "--db", str(indexed_copy), "--format", "csv"]
    assert run_finprint(*sql).stdout.splitlines()[1] == "'+SUM(1)"


def test_export_keeps_formulas_as_text_by_default(survey_archive: Path, tmp_path: Path) -> None:
    survey = tmp_path / "archive" / "2024-06-03_=SUM(1)"
    survey.mkdir(parents=True)
    shutil.copy2(next(survey_archive.rglob("*.jpg")), survey / "IMG_1_left_body.jpg")
    db = tmp_path / "c.duckdb"
    assert run_finprint("index", str(tmp_path / "archive"), "--db", str(db), "--quiet").returncode == 0

    def sites(*switch: str) -> list[str]:
        out = tmp_path / f"export{len(switch)}.csv"
        assert run_finprint("export", "csv", "--db", str(db), "--out", str(out), *switch).returncode == 0
        with out.open(newline="", encoding="utf-8") as handle:
            return [row["site"] for row in csv.DictReader(handle)]

    assert sites() == ["'=SUM(1)"]
    assert sites("--as-recorded") == ["=SUM(1)"]


def test_a_piped_run_report_keeps_every_id_whole(
    indexed_survey: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    mailed = run_finprint("report", "--db", str(indexed_survey)).stdout
    assert "FP-0000" in mailed and not re.search(r"FP-\d*…", mailed)
    assert max(len(line) for line in mailed.splitlines()) <= 100


def test_a_non_utf8_archive_or_catalogue_path_is_one_line_naming_the_fix(
    survey_archive: Path, tmp_path: Path
) -> None:
    latin1 = Path(os.fsdecode(bytes(tmp_path) + b"/Hiller\xf8y"))  # a Latin-1 folder name
    shutil.copytree(sorted(p for p in survey_archive.iterdir() if p.is_dir())[0], latin1)
    for args in (
        ["index", str(latin1), "--db", str(tmp_path / "c.duckdb")],
        ["index", str(survey_archive), "--db", str(latin1 / "c.duckdb")],
        ["individuals", "--db", str(latin1 / "c.duckdb")],
    ):
        result = run_finprint(*args)
        assert result.returncode == 1, args
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, args
        assert "not UTF-8 text" in result.stderr and "Hiller\\xf8y" in result.stderr, args
    assert not (tmp_path / "c.duckdb").exists() and not list(latin1.glob("*.duckdb"))


def test_a_new_catalogue_is_said_even_under_quiet(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    db = tmp_path / "forgotten.duckdb"
    quiet = run_finprint("index", str(folder), "--db", str(db), "--quiet")
    assert f"Creating a new catalogue at {db}" in quiet.stderr


def test_history_gives_no_time_for_a_photo_whose_camera_gave_none(tmp_path: Path) -> None:
    import numpy as np

    from catalog.synthetic import make_fish, photograph

    folder = tmp_path / "archive" / "2024-06-03_Skarholmen"
    folder.mkdir(parents=True)
    photograph(make_fish("a", 1), "left", "body", np.random.default_rng(0)).save(
        folder / "IMG_1_left_body.jpg"
    )
    db = tmp_path / "c.duckdb"
    assert run_finprint("index", str(tmp_path / "archive"), "--db", str(db), "--quiet").returncode == 0
    history = run_finprint("history", "FP-000001", "--db", str(db), "--format", "json")
    (row,) = json.loads(history.stdout)
    assert row["taken_at"] is None and row["survey_date"] == "2024-06-03"


def test_capture_histories_say_how_many_sightings_had_no_date_to_place(tmp_path: Path) -> None:
    import numpy as np

    from catalog.synthetic import make_fish, photograph

    rng = np.random.default_rng(0)
    for folder, fish in (("2024-06-03_Skarholmen", 1), ("no-date", 2)):
        (tmp_path / "archive" / folder).mkdir(parents=True)
        photograph(make_fish("f", fish), "left", "body", rng).save(
            tmp_path / "archive" / folder / "IMG_left_body.jpg"
        )
    db = tmp_path / "c.duckdb"
    assert run_finprint("index", str(tmp_path / "archive"), "--db", str(db), "--quiet").returncode == 0
    exported = run_finprint("export", "capture-history", "--db", str(db), "--out", str(tmp_path / "h.inp"))
    assert exported.returncode == 0, exported.stderr
    assert "1 sighting(s) without a survey date left out" in exported.stdout


def test_a_darwin_core_archive_of_defaults_says_what_nobody_set(indexed_survey: Path, tmp_path: Path) -> None:
    out = tmp_path / "dwca.zip"
    plain = run_finprint("export", "dwc", "--db", str(indexed_survey), "--out", str(out), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "finprint's defaults" in plain.stderr and "scientific_name" in plain.stderr
    assert "dataset_contact_email" in plain.stderr
    (tmp_path / "finprint.toml").write_text(
        'scientific_name = "Symphodus melops"\ndataset_licence = "CC-BY-4.0"\n'
        'dataset_contact_email = "data@example.org"\n'
    )
    told = run_finprint("export", "dwc", "--db", str(indexed_survey), "--out", str(out), cwd=tmp_path)
    assert told.returncode == 0 and "Warning" not in told.stderr, told.stderr


def test_the_help_reference_in_docs_is_what_finprint_prints() -> None:
    from catalog.helpdocs import render, renderers

    written = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    if f"Laid out by {renderers()}." not in written:
        pytest.skip(f"docs/cli.md was laid out by other versions than {renderers()}")
    assert render(app) == written, "docs/cli.md is stale: run `just docs`"


def test_sql_stops_at_its_time_limit_and_on_ctrl_c(indexed_copy: Path) -> None:
    endless = "SELECT count(*) FROM range(100000000000) a"
    stopped = run_finprint("sql", endless, "--db", str(indexed_copy), "--time-limit", "1")
    assert stopped.returncode == 1 and "ran past 1 s and was stopped" in stopped.stderr
    ctrl_c_in_2_s = (
        "import os, signal, threading\n"
        "threading.Timer(2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
    )
    interrupted = finprint_in_new_process(["sql", endless, "--db", str(indexed_copy)], ctrl_c_in_2_s)
    assert interrupted.returncode == 130 and "Traceback" not in interrupted.stderr, interrupted.stderr


def test_a_persons_sql_spills_outside_the_catalogue_folder_and_cleans_up(indexed_copy: Path) -> None:
    from catalog.store import Store

    with Store.open(indexed_copy, sandboxed=True) as store:
        [(spill,)] = store.read_only_sql("SELECT current_setting('temp_directory')").rows
        assert Path(spill).is_dir() and not Path(spill).is_relative_to(indexed_copy.parent)
    assert not Path(spill).exists(), "removed when the catalogue closes"
    assert not indexed_copy.with_name(indexed_copy.name + ".tmp").exists()
