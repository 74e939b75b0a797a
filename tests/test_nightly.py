"""Nightly-run behaviour: missing and moved files, reindex, the write lock, kills, cron output."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest

from catalog.errors import FinprintError, ModelMismatch
from catalog.night import index, reindex
from catalog.settings import Settings
from catalog.store import Store
from exporters.selection import ExportFilter, photo_rows
from tests.helpers import die_after_batches, finprint_in_new_process, retag_model, run_finprint


def _copy_surveys(source: Path, target: Path, count: int) -> list[Path]:
    folders = sorted(p for p in source.iterdir() if p.is_dir())[:count]
    for folder in folders:
        shutil.copytree(folder, target / folder.name)
    return [target / f.name for f in folders]


def _catalogue_rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with Store.open(db, read_only=True) as store:
        return {
            "photos": store.read_only_sql("SELECT * EXCLUDE (run_id) FROM photos ORDER BY photo_id").rows,
            "paths": store.read_only_sql("SELECT path, photo_id FROM photo_paths ORDER BY path").rows,
            "individuals": store.read_only_sql(
                "SELECT individual_id, side, crop, first_photo_id, fish_id FROM individuals ORDER BY 1"
            ).rows,
            # Automatic decisions (encounter links) too: a resumed night must make all of them.
            "decisions": store.read_only_sql(
                "SELECT action, individual_id, other_individual_id, reason, undone_at IS NULL "
                "FROM decisions ORDER BY 1, 2, 3, 4"
            ).rows,
            "sightings": store.read_only_sql(
                "SELECT photo_id, individual_id, status, caution FROM sightings ORDER BY photo_id"
            ).rows,
        }


@pytest.mark.slow
def test_deleted_file_is_marked_missing_and_keeps_its_history(survey_archive: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (folder,) = _copy_surveys(survey_archive, archive, 1)
    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, [archive])
    victim = sorted(folder.glob("*.jpg"))[0]
    victim.unlink()
    result = index(settings, [archive])
    assert result.paths_missing == 1
    with Store.open(settings.db_path, read_only=True) as store:
        missing = store.read_only_sql("SELECT path FROM photo_paths WHERE missing_since IS NOT NULL").rows
        assert missing == [(str(victim),)]
        assert any(row["path"] == str(victim) for row in photo_rows(store, ExportFilter()).records())


@pytest.mark.slow
def test_moved_file_keeps_its_sightings(survey_archive: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (folder,) = _copy_surveys(survey_archive, archive, 1)
    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, [archive])
    photo = sorted(folder.glob("*.jpg"))[0]
    with Store.open(settings.db_path, read_only=True) as store:
        before = {row["path"]: row["individual_id"] for row in photo_rows(store, ExportFilter()).records()}
    moved = archive / "sorted-later" / photo.name
    moved.parent.mkdir()
    photo.rename(moved)
    result = index(settings, [archive])
    assert result.photos_new == 0 and result.duplicate_paths == 1 and result.paths_missing == 1
    with Store.open(settings.db_path, read_only=True) as store:
        rows = {row["path"]: row["individual_id"] for row in photo_rows(store, ExportFilter()).records()}
    # One photo, listed once, where it is now, as the same fish.
    assert rows[str(moved)] == before[str(photo)] and str(photo) not in rows
    assert len(rows) == len(before)


@pytest.mark.slow
def test_reindex_swaps_the_model_and_keeps_individuals(survey_archive: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    _copy_surveys(survey_archive, archive, 2)
    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, [archive])
    before = _catalogue_rows(settings.db_path)
    other = tmp_path / "other.onnx"
    retag_model(settings.model_path, other, "0000000000aa")
    with pytest.raises(ModelMismatch, match="finprint reindex"):
        index(replace(settings, model_path=other), [archive])
    result = reindex(replace(settings, model_path=other))
    assert result.photos_embedded == len(before["photos"]) and result.embeddings_dropped == len(
        before["photos"]
    )
    assert _catalogue_rows(settings.db_path) == before
    with Store.open(settings.db_path, read_only=True) as store:
        assert store.catalogue_model_versions() == ["0000000000aa"]
    assert index(replace(settings, model_path=other), [archive]).photos_new == 0


@pytest.mark.slow
def test_second_writer_is_refused_at_once_naming_the_holder(tmp_path: Path, survey_archive: Path) -> None:
    db = tmp_path / "c.duckdb"
    holder = duckdb.connect(str(db))  # this test process holds the write lock
    try:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "catalog", "index", str(survey_archive), "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.close()
    assert result.returncode == 1
    assert "in use by another finprint process" in result.stderr
    assert f"process {os.getpid()}" in result.stderr
    assert time.monotonic() - started < 30


@pytest.fixture(scope="module")
def larger_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 500 photos: long enough to be killed at ten different moments; with every trap (a
    shared board, stamps, pair photos cut twice), so that the decisions keypoints are held back
    from (reach, references, one photograph) are the same after kills too."""
    from catalog.synthetic import Traps, generate_archive

    root = tmp_path_factory.mktemp("larger")
    generate_archive(root, n_individuals=60, n_surveys=8, seed=21, traps=Traps.every())
    return root


@pytest.mark.slow
def test_ten_kills_then_a_rerun_give_the_uninterrupted_catalogue(
    larger_archive: Path, tmp_path: Path
) -> None:
    def command(db: Path) -> list[str]:
        return [sys.executable, "-m", "catalog", "index", str(larger_archive), "--db", str(db),
                "--batch-size", "16", "--workers", "1", "--quiet"]  # fmt: skip

    assert sum(1 for _ in larger_archive.rglob("*.jpg")) >= 400
    reference = tmp_path / "reference.duckdb"
    subprocess.run(command(reference), check=True, timeout=600, capture_output=True)
    with Store.open(reference, read_only=True) as store:
        held_back = store.read_only_sql("SELECT count(*) FROM sightings WHERE caution IS NOT NULL").rows
    assert held_back[0][0] > 0  # the traps made the night hold keypoints back somewhere
    db = tmp_path / "killed.duckdb"
    wal = db.with_name(db.name + ".wal")
    rng = np.random.default_rng(5)
    kills = 0
    while kills < 10:
        process = subprocess.Popen(command(db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait for the first committed batch of this run (the write-ahead log grows), then kill
        # at a random moment shortly after: never before the run has started, whatever the load.
        start_size = wal.stat().st_size if wal.exists() else 0
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if wal.exists() and wal.stat().st_size > start_size:
                break
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.0, 0.4)))
        if process.poll() is not None:
            break  # the run finished before the kill: nothing left to interrupt
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    finished = subprocess.run(command(db), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert _catalogue_rows(db) == _catalogue_rows(reference)
    with Store.open(db, read_only=True) as store:
        statuses = [row[0] for row in store.read_only_sql("SELECT status FROM runs ORDER BY run_id").rows]
        duplicates = store.read_only_sql(
            "SELECT count(*) - count(DISTINCT photo_id) FROM sightings UNION ALL "
            "SELECT count(*) - count(DISTINCT path) FROM photo_paths"
        ).rows
    assert kills >= 5 and statuses.count("interrupted") >= 5, statuses
    assert statuses[-1] == "finished"
    assert duplicates == [(0,), (0,)]


@pytest.mark.slow
def test_a_night_resumed_after_a_kill_makes_every_encounter_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.synthetic import make_fish, photograph

    archive = tmp_path / "archive"
    rng = np.random.default_rng(4)
    for number in range(6):  # six fish, each seen once with both flanks: six encounters to link
        fish = make_fish(f"e{number}", 900 + number)
        folder = archive / "2024-06-01_Hille" / f"dive-{number}"
        folder.mkdir(parents=True)
        for side in ("left", "right"):
            photograph(fish, side, "body", rng).save(folder / f"{side}.jpg")
    settings = Settings(
        db_path=tmp_path / "reference.duckdb", path_pattern="{date}_{site}/{encounter}/*", batch_size=4
    )
    index(settings, [archive])
    reference = _catalogue_rows(settings.db_path)
    assert sum(row[0] == "link" for row in reference["decisions"]) == 6

    killed = replace(settings, db_path=tmp_path / "killed.duckdb")
    restore = die_after_batches(monkeypatch, {2})  # the process dies after its second batch is committed
    with pytest.raises(KeyboardInterrupt):
        index(killed, [archive])
    restore()
    index(killed, [archive])
    assert _catalogue_rows(killed.db_path) == reference


@pytest.mark.slow
def test_json_summary_and_log_for_cron(
    survey_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    log = tmp_path / "finprint.log"
    result = run_finprint("index", str(folder), str(tmp_path / "bad.jpg"), "--db", str(tmp_path / "c.duckdb"),
                          "--json", "--log", str(log))  # fmt: skip
    assert result.returncode == 2
    summary = json.loads(result.stdout)
    assert summary["photos_new"] == len(list(folder.glob("*.jpg")))
    assert [e["path"] for e in summary["errors"]] == [str(tmp_path / "bad.jpg")]
    assert (
        "BytesIO" not in summary["errors"][0]["reason"]
        and "not an image format" in summary["errors"][0]["reason"]
    )
    lines = log.read_text(encoding="utf-8").splitlines()
    assert "1 unreadable" in lines[0] and "bad.jpg" in lines[1]
    # What the run warned of reaches the log too: here a pattern that fits tonight's dated folder
    # but not a loose photo beside it.
    archive = tmp_path / "archive"
    second = sorted(p for p in survey_archive.iterdir() if p.is_dir())[1]
    shutil.copytree(second, archive / second.name)
    shutil.copy(sorted(second.glob("*.jpg"))[0], archive / "loose.jpg")
    (archive / "loose.jpg").write_bytes((archive / "loose.jpg").read_bytes() + b"\0")  # new content
    monkeypatch.setenv("FINPRINT_PATH_PATTERN", "{date}_{site}/*")
    again = run_finprint(
        "index", str(archive), "--db", str(tmp_path / "c.duckdb"), "--quiet", "--log", str(log)
    )
    assert again.returncode == 0, again.stderr
    added = log.read_text(encoding="utf-8").splitlines()[len(lines) :]
    assert "0 unreadable" in added[0]
    warned = [line for line in added if "path_pattern" in line]
    assert len(warned) == 1 and "loose.jpg" in warned[0]


def _half_reindexed(survey_archive: Path, tmp_path: Path) -> tuple[Settings, Path]:
    """A catalogue of one survey as a reindex killed half-way leaves it: some photos with a second
    model's embedding."""
    archive = tmp_path / "archive"
    _copy_surveys(survey_archive, archive, 1)
    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, [archive])
    with duckdb.connect(str(settings.db_path)) as con:
        con.execute("INSERT INTO embeddings SELECT photo_id, 'half0000done', vector FROM embeddings LIMIT 2")
    return settings, archive


@pytest.mark.slow
def test_unfinished_reindex_blocks_indexing(survey_archive: Path, tmp_path: Path) -> None:
    settings, archive = _half_reindexed(survey_archive, tmp_path)
    with pytest.raises(FinprintError, match="reindex"):
        index(settings, [archive])


@pytest.mark.slow
def test_flanks_photographed_in_one_encounter_are_linked(tmp_path: Path) -> None:
    from catalog.synthetic import make_fish, photograph

    rng = np.random.default_rng(3)
    survey = tmp_path / "archive" / "2024-06-03_Hille"
    for number in range(3):
        fish = make_fish(f"e{number}", 900 + number)
        folder = survey / f"fish{number}"
        folder.mkdir(parents=True)
        for side in ("left", "right"):
            photograph(fish, side, "body", rng).save(folder / f"IMG_{side}_body.jpg")
    crowded = survey / "two-fish"
    crowded.mkdir()
    for number in (7, 8):
        photograph(make_fish(f"c{number}", 950 + number), "left", "body", rng).save(
            crowded / f"IMG{number}_left.jpg"
        )
    settings = Settings(db_path=tmp_path / "c.duckdb", path_pattern="{date}_{site}/{encounter}/*")
    result = index(settings, [tmp_path / "archive"])
    assert result.links_made == 3
    with Store.open(settings.db_path, read_only=True) as store:
        decisions_made = store.query("decisions").records()
        left = store.read_only_sql(
            "SELECT s.individual_id FROM sightings s JOIN photo_paths pp USING (photo_id) "
            "WHERE pp.path LIKE '%fish0/IMG_left_body.jpg'"
        ).rows[0][0]
        assert {row[-1] for row in store.query("history", individual_id=left).rows} == set(
            store.fish_members(left)
        ) and len(store.fish_members(left)) == 2
        crowded = store.read_only_sql(
            "SELECT s.individual_id FROM sightings s JOIN photo_paths pp USING (photo_id) "
            "WHERE pp.path LIKE '%two-fish%'"
        ).rows
        # Two fish in one folder: no link, whatever they were identified as.
        assert all(store.fish_members(row[0]) == [row[0]] for row in crowded)
    assert all("automatic" in row["reason"] for row in decisions_made)


@pytest.mark.slow
def test_exports_have_one_row_per_path_while_a_reindex_is_unfinished(
    survey_archive: Path, tmp_path: Path
) -> None:
    settings, _ = _half_reindexed(survey_archive, tmp_path)
    with Store.open(settings.db_path, read_only=True) as store:
        rows = photo_rows(store, ExportFilter()).rows
        paths = store.read_only_sql("SELECT count(*) FROM photo_paths").rows[0][0]
    assert len(rows) == paths == len({row[0] for row in rows})


@pytest.mark.slow
def test_reindex_can_leave_out_a_photo_whose_file_is_gone(survey_archive: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (folder,) = _copy_surveys(survey_archive, archive, 1)
    settings = Settings(db_path=tmp_path / "c.duckdb")
    index(settings, [archive])
    before = _catalogue_rows(settings.db_path)
    sorted(folder.glob("*.jpg"))[0].unlink()
    other = tmp_path / "other.onnx"
    retag_model(settings.model_path, other, "0000000000bb")
    with pytest.raises(FinprintError, match="skip-unreadable"):
        reindex(replace(settings, model_path=other))
    # The refused run kept what it re-embedded; this one only leaves the lost photo out.
    result = reindex(replace(settings, model_path=other), skip_unreadable=True)
    assert result.photos_left_out == 1 and result.photos_embedded == 0
    after = _catalogue_rows(settings.db_path)
    assert after["sightings"] == before["sightings"] and after["individuals"] == before["individuals"]
    with Store.open(settings.db_path, read_only=True) as store:
        assert store.catalogue_model_versions() == ["0000000000bb"]
        embedded = store.read_only_sql("SELECT count(*) FROM embeddings").rows[0][0]
    assert embedded == len(before["photos"]) - 1
    assert index(replace(settings, model_path=other), [archive]).photos_new == 0


@pytest.mark.slow
def test_the_log_the_json_and_the_report_give_one_run_the_same_counts(
    survey_archive: Path, tmp_path: Path
) -> None:
    db, log = tmp_path / "c.duckdb", tmp_path / "finprint.log"
    ran = run_finprint("index", str(survey_archive), "--db", str(db), "--json", "--log", str(log))
    summary = json.loads(ran.stdout)
    assert summary["matched"] > 0 and summary["individuals_new"] > 0, "a night with re-sightings"
    logged = re.search(
        r"(\d+) new individuals, (\d+) re-sightings of (\d+) individuals, (\d+) to review",
        log.read_text(encoding="utf-8"),
    )
    reported = re.search(
        r"(\d+) new, (\d+) re-sighting\(s\) of (\d+) individual\(s\), (\d+) photo\(s\) to review",
        run_finprint("report", "--db", str(db)).stdout,
    )
    assert logged and reported
    counts = (
        summary["individuals_new"],
        summary["matched"],
        summary["individuals_resighted"],
        summary["review"],
    )
    assert tuple(map(int, logged.groups())) == tuple(map(int, reported.groups())) == counts
    with Store.open(db, read_only=True) as store:
        live = store.read_only_sql(
            "SELECT count(*) FROM individuals i WHERE merged_into IS NULL AND EXISTS "
            "(SELECT 1 FROM sightings s WHERE s.individual_id = i.individual_id)"
        ).rows[0][0]
    assert summary["individuals_new"] == live, "one night: every live individual is new"


def test_a_corrected_folder_name_corrects_the_catalogue_and_exports_each_photo_once(
    survey_archive: Path, tmp_path: Path
) -> None:
    first = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    archive = tmp_path / "archive"
    typo = archive / first.name.replace("_", "_Typo", 1)
    shutil.copytree(first, typo)
    db = tmp_path / "c.duckdb"
    index(Settings(db_path=db), [archive])
    before = _catalogue_rows(db)
    corrected = archive / first.name
    typo.rename(corrected)
    copied = archive / "2024-07-01_Elsewhere"
    copied.mkdir()
    kept = sorted(corrected.glob("*.jpg"))[0]
    shutil.copy2(kept, copied / kept.name)  # a copy: the photo stays where it was too
    shutil.move(str(sorted(corrected.glob("*.jpg"))[1]), copied)  # a move: it is only there now
    result = index(Settings(db_path=db), [archive])
    assert result.photos_new == 0 and result.photos_moved == len(list(first.glob("*.jpg")))
    assert any("found under a new path" in w for w in result.warnings)
    with Store.open(db, read_only=True) as store:
        sites = dict(store.read_only_sql("SELECT photo_id, site FROM photos").rows)
        assert store.integrity_problems() == []
        rows = photo_rows(store, ExportFilter()).records()
    site = first.name.split("_", 1)[1]
    moved_photo = [r for r in rows if r["path"].startswith(str(copied)) and r["photo_id"] != _id(kept)]
    assert {sites[r["photo_id"]] for r in moved_photo} == {"Elsewhere"}
    assert sites[_id(kept)] == site, "a copy keeps the site of the photo it copies"
    assert sorted(set(sites.values())) == sorted({site, "Elsewhere"}), "no photo keeps the typo"
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == len(sites) + 1, "each photo once, the copy twice"
    assert not any("Typo" in p for p in paths)
    assert _catalogue_rows(db)["sightings"] == before["sightings"], "who each photo shows is unchanged"


def _id(photo: Path) -> str:
    import hashlib

    return hashlib.sha256(photo.read_bytes()).hexdigest()


def test_an_archive_reached_through_a_symlink_keeps_the_paths_it_was_catalogued_under(
    survey_archive: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    _copy_surveys(survey_archive, archive, 2)
    link = tmp_path / "mounted"
    link.symlink_to(archive)
    db = tmp_path / "c.duckdb"
    index(Settings(db_path=db), [archive])
    before = _catalogue_rows(db)
    for root in (link, link / sorted(p.name for p in archive.iterdir())[0]):
        result = index(Settings(db_path=db), [root])
        assert result.photos_new == 0 and result.duplicate_paths == 0 and result.paths_missing == 0
        assert any("walked as" in w and str(archive) in w for w in result.warnings), root
    assert _catalogue_rows(db)["paths"] == before["paths"], "no path recorded twice"


def test_a_photo_rewritten_in_place_keeps_its_sighting_and_the_catalogue_stays_whole(
    survey_archive: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from catalog import decisions

    archive, folder, db = _one_survey_catalogued(survey_archive, tmp_path)
    edited, overwritten = sorted(folder.glob("*.jpg"))[:2]
    with Store.open(db) as store:
        old_id = _id(edited)
        individual = store.sighting_states([old_id])[old_id][0]
        decisions.confirm(store, [old_id], "seen on the boat")
        sightings_before = store.read_only_sql("SELECT count(*) FROM sightings").rows[0][0]
    # EXIF written into one photo (a re-encode, as tagging tools do), another replaced by a
    # different picture (the next card's file of the same name).
    with Image.open(edited) as image:
        exif = image.getexif()
        exif[0x010E] = "tagged in the field office"  # ImageDescription
        image.save(edited, quality=90, exif=exif)
    shutil.copy2(sorted(survey_archive.rglob("*.jpg"))[-1], overwritten)
    result = index(Settings(db_path=db), [archive])
    assert result.photos_edited == 1
    assert any("rewritten in place with the same picture" in w for w in result.warnings)
    with Store.open(db, read_only=True) as store:
        assert store.integrity_problems() == [], "an edited photo is not damage"
        new_id = _id(edited)
        assert store.sighting_states([new_id])[new_id] == (individual, "confirmed"), "kept, decision too"
        assert store.sighting_states([old_id]) == {}
        sightings_after = store.read_only_sql("SELECT count(*) FROM sightings").rows[0][0]
        exported = photo_rows(store, ExportFilter()).records()
    assert sightings_after == sightings_before + 1, "the edit is no new sighting; the other picture is"
    assert [r["sha256"] for r in exported if r["path"] == str(edited)] == [new_id]
    assert len({r["path"] for r in exported}) == len(exported)


def test_a_folder_link_out_of_the_archive_is_not_followed_and_is_said(
    survey_archive: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    (folder,) = _copy_surveys(survey_archive, archive, 1)
    elsewhere = tmp_path / "someone-elses-photos"
    shutil.copytree(sorted(p for p in survey_archive.iterdir() if p.is_dir())[1], elsewhere)
    (archive / "2024-07-01_Linked").symlink_to(elsewhere)
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [archive])
    assert result.photos_new == len(list(folder.glob("*.jpg"))), "only the archive's own photos"
    [note] = [w for w in result.warnings if "lead out of the archive" in w]
    assert "2024-07-01_Linked -> " in note and str(elsewhere) in note


@pytest.mark.slow
def test_a_terminated_night_stops_as_ctrl_c_does(survey_archive: Path, tmp_path: Path) -> None:
    """SIGTERM (cron's timeout, systemd, kill) after the first batch: the run is marked
    interrupted, says so, and leaves no half-written file; the rerun finishes the night."""
    db = tmp_path / "c.duckdb"
    terminated_after_a_batch = (
        "import os, signal\n"
        "from catalog.store import Store\n"
        "real = Store.write_batch\n"
        "def write_then_terminate(self, *args, **kwargs):\n"
        "    real(self, *args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "Store.write_batch = write_then_terminate\n"
    )
    stopped = finprint_in_new_process(
        ["index", str(survey_archive), "--db", str(db)], terminated_after_a_batch
    )
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped.stderr
    assert "nterrupted" in stopped.stderr
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql("SELECT status FROM runs").rows == [("interrupted",)]
    assert not list(tmp_path.glob("*.partial"))
    assert index(Settings(db_path=db), [survey_archive]).photos_new > 0


def _one_survey_catalogued(survey_archive: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(archive, its one survey folder, its catalogue), indexed once."""
    archive = tmp_path / "archive"
    (folder,) = _copy_surveys(survey_archive, archive, 1)
    db = tmp_path / "c.duckdb"
    index(Settings(db_path=db), [archive])
    return archive, folder, db


def test_photos_rewritten_in_place_are_recognised_in_whichever_batch_they_fall(
    survey_archive: Path, tmp_path: Path
) -> None:
    """Batches are prepared one ahead of the one being written: each must keep its own old
    versions (small batches, edits spread over several of them)."""
    from PIL import Image

    archive, folder, db = _one_survey_catalogued(survey_archive, tmp_path)
    edited = sorted(folder.glob("*.jpg"))[::5]
    for photo in edited:
        with Image.open(photo) as image:
            image.save(photo, quality=90, exif=image.getexif())
    result = index(Settings(db_path=db, batch_size=2), [archive])
    assert result.photos_edited == len(edited) > 2
    with Store.open(db, read_only=True) as store:
        assert store.integrity_problems() == []


def test_a_photo_only_touched_is_neither_moved_nor_edited(survey_archive: Path, tmp_path: Path) -> None:
    archive, folder, db = _one_survey_catalogued(survey_archive, tmp_path)
    touched = sorted(folder.glob("*.jpg"))[0]
    os.utime(touched, (1_000_000_000, 1_000_000_000))  # a backup tool's copy-back, say
    result = index(Settings(db_path=db), [archive])
    assert result.photos_new == 0 and result.photos_moved == 0 and result.photos_edited == 0
    assert not any("new path" in w or "rewritten" in w for w in result.warnings)
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql("SELECT count(*) FROM photos WHERE replaced_by IS NOT NULL").rows == [(0,)]
        assert store.integrity_problems() == []
