"""The catalogue file: schema upgrades with a backup, newer schemas refused, read-only opens."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from catalog.errors import CatalogueBusy, CatalogueNotFound, FinprintError
from catalog.store import Store, sql_dir
from tests.helpers import finprint_with_full_disk, python_with_full_disk


def _old_catalogue(db: Path, version: int) -> None:
    """A catalogue as an older finprint left it: migrations up to `version` only."""
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
    )
    for path in sorted((sql_dir() / "migrations").glob("*.sql"))[:version]:
        con.execute(path.read_text(encoding="utf-8"))
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [int(path.name[:3])])
    con.execute(
        "INSERT INTO runs (run_id, started_at, status, model_version, distance_threshold, finprint_version, "
        "roots) VALUES (1, now(), 'finished', 'old000000000', 0.9, '0.0.1', ['archive'])"
    )
    con.close()


def test_old_catalogue_is_upgraded_after_a_backup(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    _old_catalogue(db, 1)
    with Store.open(db) as store:
        assert store.schema_backup == tmp_path / "old.duckdb.schema1.bak"
        assert store.latest_run_id() == 1
    backup = duckdb.connect(str(tmp_path / "old.duckdb.schema1.bak"), read_only=True)
    assert backup.execute("SELECT max(version) FROM schema_migrations").fetchone() == (1,)
    backup.close()


def test_read_only_open_of_an_old_catalogue_says_how_to_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    _old_catalogue(db, 2)
    with pytest.raises(FinprintError, match="finprint migrate"):
        Store.open(db, read_only=True)


def test_newer_catalogue_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    Store.open(db).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_migrations VALUES (999, now())")
    con.close()
    for read_only in (False, True):
        with pytest.raises(FinprintError, match="newer than this finprint"):
            Store.open(db, read_only=read_only)


def test_fresh_catalogue_has_no_backup_and_migrations_are_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with Store.open(db) as store:
        assert store.schema_backup is None
        assert store.migrate() == []
    assert not list(tmp_path.glob("*.bak"))


def test_read_command_on_a_missing_catalogue_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CatalogueNotFound, match="finprint index"):
        Store.open(tmp_path / "none.duckdb", read_only=True)


def test_readers_are_told_when_an_index_holds_the_catalogue(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "c.duckdb"
    Store.open(db).close()
    script = (
        f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CatalogueBusy, match=f"process {holder.pid}"):
            Store.open(db, read_only=True)
    finally:
        holder.kill()
        holder.communicate()  # waits, and closes the pipe


def test_a_damaged_catalogue_is_one_line_naming_the_copy_to_restore(tmp_path: Path) -> None:
    db = tmp_path / "wrasse.duckdb"
    db.write_bytes(b"DUCK" + bytes(range(256)) * 64)
    with pytest.raises(FinprintError) as plain:
        Store.open(db)
    assert "restore it from your backup" in str(plain.value) and "\n" not in str(plain.value)
    (tmp_path / "wrasse.duckdb.schema8.bak").write_bytes(b"")
    with pytest.raises(FinprintError) as named:
        Store.open(db, read_only=True)
    assert str(tmp_path / "wrasse.duckdb.schema8.bak") in str(named.value)


def test_a_finished_night_leaves_a_copy_that_a_damaged_catalogue_names(
    survey_archive: Path, tmp_path: Path
) -> None:
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path / "wrasse.duckdb"
    first = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    index(Settings(db_path=db), [first])
    copy = tmp_path / "wrasse.duckdb.last-night.bak"
    with Store.open(copy, read_only=True) as restored, Store.open(db, read_only=True) as live:
        assert (
            restored.read_only_sql("SELECT count(*) FROM sightings").rows
            == live.read_only_sql("SELECT count(*) FROM sightings").rows
            != [(0,)]
        )
    db.write_bytes(b"DUCK" + bytes(range(256)) * 64)
    with pytest.raises(FinprintError) as damaged:
        Store.open(db)
    assert str(copy) in str(damaged.value) and "\n" not in str(damaged.value)


@pytest.mark.slow
def test_check_finds_what_does_not_agree(survey_archive: Path, tmp_path: Path) -> None:
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path / "c.duckdb"
    index(
        Settings(db_path=db, nightly_backup=False),
        [sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]],
    )
    assert not (tmp_path / "c.duckdb.last-night.bak").exists()
    with Store.open(db, read_only=True) as store:
        assert store.integrity_problems() == []
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM individuals WHERE individual_id = 'FP-000001'")
        con.execute("DELETE FROM photo_paths WHERE photo_id = (SELECT max(photo_id) FROM photos)")
    with Store.open(db, read_only=True) as store:
        problems = store.integrity_problems()
    assert any("individual that does not exist" in p for p in problems)
    assert any("1 photo(s) with no path" in p for p in problems)


def test_keypoints_kept_in_duckdb_by_an_older_finprint_move_to_the_keypoints_file(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    _old_catalogue(db, 9)
    blobs = {f"{n:064x}": bytes([n]) * (1000 + n) for n in range(3)}
    con = duckdb.connect(str(db))
    for photo_id, blob in blobs.items():
        con.execute("INSERT INTO local_features VALUES (?, 'sift-x', ?)", [photo_id, blob])
    con.close()
    with Store.open(db) as store:
        assert store.local_features([*blobs, "f" * 64], "sift-x") == blobs
        assert store.local_features(list(blobs), "another-detector") == {}
        tables = {
            row[0] for row in store.read_only_sql("SELECT table_name FROM information_schema.tables").rows
        }
    assert "local_features" not in tables
    # The file beside the catalogue holds them now, for a read-only reader too.
    with Store.open(db, read_only=True) as reader:
        assert reader.local_features(list(blobs), "sift-x") == blobs


def test_a_damaged_keypoints_file_is_put_aside_and_the_night_goes_on(tmp_path: Path) -> None:
    from catalog.store.keypoints import keypoints_path

    db = tmp_path / "c.duckdb"
    with Store.open(db) as store:
        store.write_embeddings("m", [], [], [("a" * 64, b"keypoints")], "sift-x")
    keypoints_path(db).write_bytes(b"not a database" * 100)
    with Store.open(db, read_only=True) as reader:
        assert reader.local_features(["a" * 64], "sift-x") == {}
        assert any("could not be read" in problem for problem in reader.integrity_problems())
    with Store.open(db) as store:
        notes = store.keypoint_notes()
        assert len(notes) == 1 and "c.duckdb.keypoints.damaged" in notes[0] and "finprint reindex" in notes[0]
        assert store.local_features(["a" * 64], "sift-x") == {}
        store.write_embeddings("m", [], [], [("b" * 64, b"new")], "sift-x")
        assert store.local_features(["b" * 64], "sift-x") == {"b" * 64: b"new"}
        assert store.integrity_problems() == []
    assert (tmp_path / "c.duckdb.keypoints.damaged").read_bytes().startswith(b"not a database")


def _damage_table(db: Path, table: str) -> None:
    """Overwrite bytes in a storage block that holds `table` and no other table, as a bad sector
    would: DuckDB's block checksum then fails when, and only when, that table is read."""
    with duckdb.connect(str(db), read_only=True) as con:
        block_size = int(con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0])
        names = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        blocks = {
            name: {int(b) for (b,) in con.execute(
                f"SELECT block_id FROM pragma_storage_info('{name}') WHERE block_id >= 0").fetchall()}
            for name in names
        }  # fmt: skip
    own = sorted(blocks[table] - set().union(*(b for name, b in blocks.items() if name != table)))
    assert own, f"{table} shares all its blocks"
    with db.open("r+b") as handle:
        # Three 4 KiB headers, then the blocks, each starting with its 8-byte checksum.
        handle.seek(3 * 4096 + own[0] * block_size + 8 + 16)
        handle.write(b"\xff" * 64)


@pytest.mark.slow
def test_a_damaged_table_never_replaces_the_last_good_copy(survey_archive: Path, tmp_path: Path) -> None:
    from catalog import decisions
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path / "wrasse.duckdb"
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    index(Settings(db_path=db), [folders[0]])
    with Store.open(db) as store:
        decisions.rename(store, "FP-000001", "PIT 1", "tag read")
    index(Settings(db_path=db), [folders[0]])  # nothing new; the copy now holds the decision
    copy = tmp_path / "wrasse.duckdb.last-night.bak"
    good = copy.read_bytes()
    _damage_table(db, "decisions")  # a table the night never reads
    result = index(Settings(db_path=db), folders[:2])
    assert result.photos_new > 0
    assert any("cannot be read whole" in w and "table decisions" in w for w in result.warnings)
    assert copy.read_bytes() == good
    assert not list(tmp_path.glob("*.partial"))
    with Store.open(copy, read_only=True) as restored:
        assert restored.resolve_individual("PIT 1") == "FP-000001"


@pytest.mark.slow
def test_the_nightly_copy_keeps_the_night_before_too(survey_archive: Path, tmp_path: Path) -> None:
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path / "wrasse.duckdb"
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    index(Settings(db_path=db), [folders[0]])
    first = (tmp_path / "wrasse.duckdb.last-night.bak").read_bytes()
    index(Settings(db_path=db), folders[:2])
    assert (tmp_path / "wrasse.duckdb.night-before.bak").read_bytes() == first
    assert (tmp_path / "wrasse.duckdb.last-night.bak").read_bytes() != first


@pytest.mark.slow
def test_a_nightly_copy_cut_short_by_a_full_disk_leaves_no_partial_file(tmp_path: Path) -> None:
    """The write limit of a process (RLIMIT_FSIZE) stands in for a full disk."""
    db = tmp_path / "c.duckdb"
    with Store.open(db) as store:
        store.start_run("abcdef123456", 0.9, "test", ["archive"])
    copy = tmp_path / "c.duckdb.last-night.bak"
    copy.write_bytes(b"last night's good copy")
    code = (
        "from pathlib import Path\n"
        "from catalog.store import write_nightly_backup\n"
        "try:\n"
        f"    write_nightly_backup(Path({str(db)!r}))\n"
        "except OSError:\n"
        "    sys.exit(7)\n"
    )
    full = python_with_full_disk(code, 4096, timeout_s=120)
    assert full.returncode == 7, full.stderr
    assert copy.read_bytes() == b"last night's good copy"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["moved without it", "given another catalogue's"])
def test_a_catalogue_without_its_own_keypoints_file_says_so_and_names_reindex(
    survey_archive: Path, tmp_path: Path, how: str
) -> None:
    from catalog.night import index
    from catalog.settings import Settings

    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    db, other = tmp_path / "a" / "wrasse.duckdb", tmp_path / "b" / "other.duckdb"
    db.parent.mkdir()
    other.parent.mkdir()
    index(Settings(db_path=db), [folders[0]])
    keypoints = tmp_path / "a" / "wrasse.duckdb.keypoints"
    keypoints.unlink()
    if how == "given another catalogue's":
        index(Settings(db_path=other), [folders[1]])
        keypoints.write_bytes((tmp_path / "b" / "other.duckdb.keypoints").read_bytes())
    with Store.open(db, read_only=True) as store:
        problems = store.integrity_problems()
    assert any("reindex" in p and ("missing" in p or "another catalogue" in p) for p in problems), problems
    result = index(Settings(db_path=db), folders[:2])
    said = [w for w in result.warnings if "keypoints" in w and "reindex" in w]
    assert len(said) == 1 and ("missing" in said[0] or "another catalogue" in said[0])
    # Said once: from then on the file is this catalogue's own.
    assert not [w for w in index(Settings(db_path=db), folders[:2]).warnings if "keypoints" in w]


@pytest.mark.slow
def test_a_full_disk_never_moves_a_good_keypoints_file_aside(survey_archive: Path, tmp_path: Path) -> None:
    """The write limit of a process (RLIMIT_FSIZE) stands in for a full disk."""
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path / "wrasse.duckdb"
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())
    index(Settings(db_path=db), [folders[0]])
    keypoints = tmp_path / "wrasse.duckdb.keypoints"
    with Store.open(db, read_only=True) as store:
        described = store.keypoint_count()
    full = finprint_with_full_disk(["index", str(folders[1]), "--db", str(db), "--quiet"], 1)
    assert full.returncode == 1, full.stderr
    assert "Free disk space" in full.stderr
    assert not list(tmp_path.glob("*.damaged"))
    with Store.open(db, read_only=True) as store:
        assert store.keypoint_count() == described
        assert not store.integrity_problems()
    assert keypoints.is_file()


@pytest.mark.slow
def test_commands_on_a_damaged_table_say_which_copy_to_restore_without_a_traceback(
    survey_archive: Path, tmp_path: Path
) -> None:
    from catalog import decisions
    from catalog.night import index
    from catalog.settings import Settings
    from tests.helpers import run_finprint

    db = tmp_path / "wrasse.duckdb"
    index(Settings(db_path=db), [sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]])
    with Store.open(db) as store:
        decisions.rename(store, "FP-000001", "PIT 1", "tag read")
    _damage_table(db, "decisions")
    for command in ("decisions", "report"):
        result = run_finprint(command, "--db", str(db))
        assert result.returncode == 1, (command, result.stdout)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "finprint check" in result.stderr and "wrasse.duckdb.last-night.bak" in result.stderr
    # Reads outside the named queries too (resolving an id, the night's own reads).
    _damage_table(db, "sightings")
    archive = str(sorted(p for p in survey_archive.iterdir() if p.is_dir())[1])
    for command in (["individuals"], ["history", "FP-000001"], ["index", archive, "--quiet"]):
        result = run_finprint(*command, "--db", str(db))
        assert result.returncode == 1, (command, result.stdout)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, command
        assert "finprint check" in result.stderr and "wrasse.duckdb.last-night.bak" in result.stderr


def test_two_copies_made_at_once_never_share_a_half_made_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.store import backups

    db = tmp_path / "c.duckdb"
    Store.open(db).close()
    partials: list[Path] = []
    real_copy = backups.shutil.copyfile

    def copy_and_note(source: Path, target: Path) -> None:
        partials.append(Path(target))
        real_copy(source, target)

    monkeypatch.setattr(backups.shutil, "copyfile", copy_and_note)
    backups.write_nightly_backup(db)
    backups.write_nightly_backup(db)
    assert len(set(partials)) == 2 and all(p.name.endswith(".partial") for p in partials)
    assert not list(tmp_path.glob("*.partial"))
