"""A hostile archive: every bad file becomes an error row with a reason; nothing else is harmed."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.night import index
from catalog.settings import Settings
from catalog.store import Store
from catalog.synthetic import make_fish, photograph
from tests.helpers import finprint_with_full_disk, run_finprint

BAD = {
    "zero-bytes.jpg",
    "truncated.jpg",
    "bad-crc.png",
    "text-file.jpg",
    "bomb.png",
    "one-pixel.png",  # not usable: no skin pattern in one pixel
    "lens-cap.jpg",  # not usable: blank frames, each of which would become a new fish
    "open-water.jpg",
}


def _fish_photo(seed: int) -> Image.Image:
    return photograph(make_fish(f"h{seed}", seed), "left", "body", np.random.default_rng(seed))


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    raw = bytearray(_png_bytes(Image.new("L", (1, 1))))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw[16:29] = header
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(raw)


def build_corpus(root: Path) -> None:
    good = root / "2024-06-03_Hille"
    good.mkdir(parents=True)
    jpeg = io.BytesIO()
    _fish_photo(1).save(jpeg, format="JPEG", quality=90)
    data = jpeg.getvalue()
    (good / "zero-bytes.jpg").write_bytes(b"")
    (good / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (good / "garbage-after-end.jpg").write_bytes(data + b"\x00garbage" * 100)
    png = bytearray(_png_bytes(_fish_photo(2)))
    png[40] ^= 0xFF  # inside the first chunk after IHDR: its CRC no longer matches
    (good / "bad-crc.png").write_bytes(bytes(png))
    (good / "text-file.jpg").write_text("these are field notes, not a photo\n")
    (good / "bomb.png").write_bytes(_bomb_png(20000, 20000))
    Image.new("RGB", (1, 1), (90, 120, 80)).save(good / "one-pixel.png")
    Image.new("RGB", (640, 480), (2, 2, 3)).save(good / "lens-cap.jpg", quality=90)
    water = np.random.default_rng(0).normal((30, 110, 120), 1.0, (480, 640, 3))
    Image.fromarray(np.clip(water, 0, 255).astype(np.uint8)).save(good / "open-water.jpg", quality=90)
    # A fish in poor light is still a photo of a fish.
    dark = (np.asarray(_fish_photo(5), dtype=np.float32) * 0.12).astype(np.uint8)
    Image.fromarray(dark).save(good / "dark-fish.jpg", quality=90)
    Image.fromarray(np.linspace(0, 65535, 64 * 32, dtype=np.uint16).reshape(32, 64)).save(
        good / "deep-16bit.tif"
    )
    _fish_photo(3).convert("CMYK").save(good / "cmyk.jpg", quality=90)
    _fish_photo(4).convert("LA").save(good / "grey-alpha.png")
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00" if orientation % 2 else "2024:13:45 99:99:99"
        _fish_photo(10 + orientation).save(good / f"orientation-{orientation}.jpg", exif=exif.tobytes())
    for name in ("ünïcode fisk ø.jpg", "with  spaces.jpg", "new\nline.jpg", "<script>alert(1)<script>.jpg"):
        _fish_photo(len(name)).save(good / name, quality=85)
    (good / "looks-like-a-photo.jpg").mkdir()
    os.symlink(good, good / "loop")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "archive"
    build_corpus(root)
    return root


def test_run_finishes_and_names_every_bad_file(corpus: Path, tmp_path: Path) -> None:
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [corpus])
    assert {Path(e.path).name for e in result.errors} == BAD
    assert all(e.reason for e in result.errors)
    good_files = {p.name for p in corpus.rglob("*") if p.is_file() and not p.is_symlink()} - BAD
    assert result.photos_new == len(good_files)
    with Store.open(tmp_path / "c.duckdb", read_only=True) as store:
        errors = store.query("run_errors", run_id=result.run_id).rows
    assert {Path(path).name for path, _ in errors} == BAD
    reasons = dict((Path(p).name, r) for p, r in errors)
    assert "too large" in reasons["bomb.png"]
    assert "empty" in reasons["zero-bytes.jpg"]
    assert "not usable" in reasons["one-pixel.png"]
    assert "blank frame" in reasons["lens-cap.jpg"] and "blank frame" in reasons["open-water.jpg"]


def test_exit_code_two_and_catalogue_unchanged_by_a_rerun(corpus: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    command = ("index", str(corpus), "--db", str(db), "--quiet")
    first = run_finprint(*command)
    assert first.returncode == 2, first.stderr
    assert "bomb.png" in first.stderr and "text-file.jpg" in first.stderr
    with Store.open(db, read_only=True) as store:
        before = store.read_only_sql("SELECT * FROM sightings ORDER BY photo_id").rows
    second = run_finprint(*command)
    assert second.returncode == 2  # the bad files are still bad, and still reported
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql("SELECT * FROM sightings ORDER BY photo_id").rows == before


def test_file_deleted_during_the_run_is_an_error_not_a_crash(tmp_path: Path) -> None:
    from catalog.decode import decode_one
    from catalog.modelcard import read_card
    from catalog.photos import FoundFile
    from catalog.settings import DEFAULT_MODEL_PATH
    from catalog.store import PhotoError

    gone = FoundFile(tmp_path / "vanished.jpg", 1000, 1)
    outcome = decode_one(tmp_path, gone, read_card(DEFAULT_MODEL_PATH), {"decode": 0.0})
    assert isinstance(outcome, PhotoError) and "vanished.jpg" in outcome.path


def test_dangling_link_is_an_error_row(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    _fish_photo(7).save(folder / "fine.jpg")
    os.symlink(tmp_path / "gone.jpg", folder / "dangling.jpg")
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [folder])
    assert [Path(e.path).name for e in result.errors] == ["dangling.jpg"]
    assert result.photos_new == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_fifos_and_devices_are_error_rows_and_never_block_the_night(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    _fish_photo(9).save(folder / "fine.jpg")
    os.mkfifo(folder / "pipe.jpg")  # reading it would wait for a writer forever
    os.symlink("/dev/zero", folder / "endless.jpg")  # reading it would never end
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [folder])
    reasons = {Path(e.path).name: e.reason for e in result.errors}
    assert set(reasons) == {"pipe.jpg", "endless.jpg"}
    assert all("not a regular file" in reason for reason in reasons.values())
    assert result.photos_new == 1


def test_a_file_larger_than_a_photo_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from catalog.photos import UnreadableFile, read_photo_file

    big = tmp_path / "video.jpg"
    big.write_bytes(b"\xff" * 5000)
    assert read_photo_file(big, max_bytes=5000) == b"\xff" * 5000
    with pytest.raises(UnreadableFile, match="more than a photo"):
        read_photo_file(big, max_bytes=4999)


@pytest.mark.skipif(sys.platform != "linux", reason="names are bytes on Linux; other systems refuse them")
def test_a_folder_name_that_is_not_utf8_is_an_error_row_and_the_night_goes_on(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    latin1 = os.path.join(os.fsencode(archive), b"2024-06-01_Bj\xf8rn")
    os.makedirs(latin1)
    _fish_photo(10).save(os.fsdecode(os.path.join(latin1, b"p1.jpg")))
    (archive / "2024-06-02_Ok").mkdir()
    _fish_photo(11).save(archive / "2024-06-02_Ok" / "p2.jpg")
    db = tmp_path / "c.duckdb"
    for _ in range(2):  # the rerun must not crash at the same photo either
        result = index(Settings(db_path=db), [archive])
        assert [e.path for e in result.errors] == [f"{archive}/2024-06-01_Bj\\xf8rn/p1.jpg"]
        assert "not valid UTF-8" in result.errors[0].reason
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql("SELECT count(*) FROM photos").rows == [(1,)]
        errors = store.read_only_sql("SELECT path FROM errors").rows
        assert errors and all("Bj\\xf8rn" in row[0] for row in errors)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_an_error_row(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    _fish_photo(8).save(folder / "locked.jpg")
    (folder / "locked.jpg").chmod(0)
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [folder])
    assert [Path(e.path).name for e in result.errors] == ["locked.jpg"]


@pytest.mark.slow
def test_fifty_thousand_files_in_one_folder(tmp_path: Path) -> None:
    folder = tmp_path / "sd-card-dump"
    folder.mkdir()
    for n in range(49_990):
        (folder / f"DSC{n:05d}.JPG").touch()  # a card that was never written to the end
    for n in range(10):
        _fish_photo(100 + n).save(folder / f"fish{n}.jpg")
    result = index(Settings(db_path=tmp_path / "c.duckdb", batch_size=256), [folder])
    assert result.files_seen == 50_000
    assert result.photos_new == 10 and len(result.errors) == 49_990
    with Store.open(tmp_path / "c.duckdb", read_only=True) as store:
        assert len(store.query("run_errors", run_id=result.run_id).rows) == 49_990


@pytest.mark.slow
def test_disk_full_stops_cleanly_and_the_rerun_completes(survey_archive: Path, tmp_path: Path) -> None:
    """The write limit of a process (RLIMIT_FSIZE) stands in for a full disk."""
    db = tmp_path / "c.duckdb"
    first_folder = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    index(Settings(db_path=db), [first_folder])
    full = finprint_with_full_disk(["index", str(survey_archive), "--db", str(db), "--quiet"], 60_000)
    assert full.returncode == 1, full.stderr
    assert "could not write the catalogue" in full.stderr and "Free disk space" in full.stderr
    counts = (
        "SELECT (SELECT count(*) FROM photos), (SELECT count(*) FROM sightings), "
        "(SELECT count(*) FROM photo_paths)"
    )
    with Store.open(db, read_only=True) as store:
        photos, sightings, paths = store.read_only_sql(counts).rows[0]
    assert photos == sightings == paths  # no half-written batch
    rerun = subprocess.run([sys.executable, "-m", "catalog", "index", str(survey_archive), "--db", str(db),
                            "--quiet"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    with Store.open(db, read_only=True) as store:
        photos, sightings, paths = store.read_only_sql(counts).rows[0]
    assert photos == sightings == paths == sum(1 for _ in survey_archive.rglob("*.jpg"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_catalogue_folder_is_a_clear_error(tmp_path: Path) -> None:
    from catalog.errors import FinprintError

    folder = tmp_path / "archive"
    folder.mkdir()
    _fish_photo(9).save(folder / "fish.jpg")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    with pytest.raises(FinprintError, match="locked"):
        index(Settings(db_path=locked / "c.duckdb"), [folder])


def test_an_image_over_the_pixel_limit_is_refused_even_below_twice_it(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    _fish_photo(12).save(folder / "fine.jpg")
    side = int((Image.MAX_IMAGE_PIXELS * 1.5) ** 0.5)  # Pillow alone would decode this one
    (folder / "big.png").write_bytes(_bomb_png(side, side))
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [folder])
    assert [(Path(e.path).name, "more than a photo" in e.reason) for e in result.errors] == [
        ("big.png", True)
    ]


def test_overlapping_roots_catalogue_each_photo_once(tmp_path: Path) -> None:
    folder = tmp_path / "archive" / "2024-06-01_Hille"
    folder.mkdir(parents=True)
    for seed in (13, 14):
        _fish_photo(seed).save(folder / f"{seed}.jpg")
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [tmp_path / "archive", folder])
    assert result.photos_new == 2 and not result.errors


def test_a_foreign_duckdb_file_is_not_turned_into_a_catalogue(tmp_path: Path) -> None:
    import duckdb

    from catalog.errors import FinprintError

    foreign = tmp_path / "lab.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE specimens AS SELECT 1 AS n")
    with pytest.raises(FinprintError, match=r"not a finprint catalogue.*specimens"):
        Store.open(foreign)
    with duckdb.connect(str(foreign), read_only=True) as con:
        tables = {
            row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert tables == {"specimens"}


def test_a_deep_archive_is_walked_without_a_recursion_limit(tmp_path: Path) -> None:
    from catalog.photos import walk

    deepest = tmp_path / "archive"
    for level in range(400):
        deepest = deepest / f"{level % 10}"
    deepest.mkdir(parents=True)
    _fish_photo(15).save(deepest / "deep.jpg")
    # Deeper than the interpreter's stack allows: a recursive walk raises RecursionError here.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        names = [f.path.name for f in walk(tmp_path / "archive")]
    finally:
        sys.setrecursionlimit(limit)
    assert names == ["deep.jpg"]


def test_a_folder_that_cannot_be_listed_is_an_error_and_its_photos_are_not_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    for site in ("2024-06-01_A", "2024-06-02_B"):
        (archive / site).mkdir(parents=True)
        _fish_photo(len(site) + ord(site[-1])).save(archive / site / "p.jpg")
    db = tmp_path / "c.duckdb"
    assert index(Settings(db_path=db), [archive]).photos_new == 2
    locked = archive / "2024-06-02_B"
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(str(path)) == locked:  # as a share that lost its permissions overnight
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    result = index(Settings(db_path=db), [archive])
    assert [(e.path, e.reason) for e in result.errors] == [(str(locked), "folder could not be listed")]
    assert result.paths_missing == 0
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql(
            "SELECT count(*) FROM photo_paths WHERE missing_since IS NOT NULL"
        ).rows == [(0,)]
        assert store.read_only_sql("SELECT path FROM errors").rows == [(str(locked),)]


def test_a_graph_save_that_fails_still_finishes_the_night(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.identify import Identifier

    folder = tmp_path / "archive"
    folder.mkdir()
    _fish_photo(16).save(folder / "p.jpg")

    def disk_full(self: Identifier, directory: Path, model_version: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Identifier, "save", disk_full)
    db = tmp_path / "c.duckdb"
    result = index(Settings(db_path=db), [folder])
    assert any("could not be saved" in w for w in result.warnings)
    with Store.open(db, read_only=True) as store:
        assert store.read_only_sql("SELECT status FROM runs").rows == [("finished",)]


def test_a_folder_whose_path_is_over_the_system_limit_is_an_error_that_says_so(tmp_path: Path) -> None:
    from catalog.night import PATH_MAX_BYTES

    archive = tmp_path / "archive"
    archive.mkdir()
    _fish_photo(3).save(archive / "ok.jpg")
    # Built a level at a time through folder handles: no single call sees the whole path.
    handle = os.open(archive, os.O_RDONLY)
    levels = PATH_MAX_BYTES // 200 + 1
    for level in range(levels):
        name = f"{level:02d}-" + "x" * 197
        os.mkdir(name, dir_fd=handle)
        deeper = os.open(name, os.O_RDONLY, dir_fd=handle)
        os.close(handle)
        handle = deeper
    photo = io.BytesIO()
    _fish_photo(4).save(photo, "JPEG")
    written = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, dir_fd=handle)
    os.write(written, photo.getvalue())
    os.close(written)
    os.close(handle)
    result = index(Settings(db_path=tmp_path / "c.duckdb"), [archive])
    assert result.photos_new == 1
    [error] = result.errors
    assert len(os.fsencode(error.path)) >= PATH_MAX_BYTES
    assert f"over the system's limit of {PATH_MAX_BYTES:,}" in error.reason
    assert "shorten the folder names" in error.reason
