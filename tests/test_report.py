"""Reports: the rich run report at a fixed width, and the HTML page with a hostile file name."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from catalog import report
from catalog.night import index
from catalog.report_html import run_page
from catalog.settings import Settings
from catalog.store import Store

# A file name cannot hold "/", so no closing tag; an opening tag and an onerror handler will do.
HOSTILE = "<script>document.title='pwned' <img src=x onerror=\"document.title='pwned'\"> & co.jpg"


@pytest.fixture(scope="module")
def hostile_catalogue(survey_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two survey folders, one photo renamed to something a browser would run."""
    root = tmp_path_factory.mktemp("hostile")
    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())[:4]
    for folder in folders:
        shutil.copytree(folder, root / "archive" / folder.name)
    last = sorted((root / "archive" / folders[-1].name).glob("*_left_body.jpg"))[0]
    last.rename(last.with_name(f"IMG_left_body {HOSTILE}"))
    db = root / "c.duckdb"
    index(Settings(db_path=db), [root / "archive"])
    return db


def _page(db: Path) -> str:
    with Store.open(db, read_only=True) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        queries = [store.query(q, run_id=run_id) for q in ("run_summary", "run_sightings", "run_errors")]
        individuals = sorted({row[0] for row in queries[1].rows})[:3]
        histories = {i: store.query("history", individual_id=i) for i in individuals}
    return run_page(queries[0], queries[1], queries[2], histories)


def test_html_escapes_every_file_name(hostile_catalogue: Path) -> None:
    page = _page(hostile_catalogue)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "Content-Security-Policy" in page


def test_html_embeds_the_photos_as_pairs(hostile_catalogue: Path) -> None:
    page = _page(hostile_catalogue)
    images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert images, "no embedded thumbnails"
    assert base64.b64decode(images[0])[:2] == b"\xff\xd8"
    assert page.count("class='pair'") * 2 <= len(images)
    # Self-contained: nothing to fetch (the embedded photos' base64 may spell "http" by chance).
    assert "http" not in re.sub(r"data:image/jpeg;base64,[A-Za-z0-9+/=]*", "", page).replace("http-equiv", "")


def test_run_report_text_at_fixed_width(hostile_catalogue: Path) -> None:
    console = Console(width=100, color_system=None, record=True, file=io.StringIO())
    with Store.open(hostile_catalogue, read_only=True) as store:
        run_id = store.latest_run_id()
        queries = [store.query(q, run_id=run_id) for q in ("run_summary", "run_sightings", "run_errors")]
    console.print(report.run_report(*queries))
    text = console.export_text()
    assert "finprint index run" in text
    assert "Individuals" in text and "new" in text
    # New individuals point to the command that lists whom each looks like.
    assert "finprint lookalikes" in text
    assert all(len(line) <= 100 for line in text.splitlines())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_page_renders_in_chromium_without_running_the_script(hostile_catalogue: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(_page(hostile_catalogue), encoding="utf-8")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout  # fmt: skip
    assert "<title>finprint run" in dom and "pwned" not in dom.split("</title>")[0]
    assert 'class="pair"' in dom


def test_history_and_query_tables_match_golden_text(tmp_path: Path) -> None:
    from datetime import date, datetime

    import numpy as np

    from catalog.store import Batch, IndividualRow, PhotoRow, SightingRow

    store = Store.open(tmp_path / "g.duckdb")
    run_id = store.start_run("abcdef123456", 0.9, "test", ["archive"])
    batch = Batch()
    for n, (site, day, status, distance) in enumerate(
        [
            ("Skarholmen", 3, "new", None),
            ("Hillesoy", 10, "matched", 0.412),
            ("Skarholmen", 17, "review", 0.853),
        ]
    ):
        photo_id = f"{n}" * 16
        batch.photos.append(
            PhotoRow(photo_id, f"2024-06-{day:02d}_{site}/IMG_{n}_left_body.jpg", 1, 1, 8, 8,
                     datetime(2024, 6, day, 9, n), 60.1, 5.2, date(2024, 6, day), site, "GoPro", "left",
                     "body")
        )  # fmt: skip
        batch.vectors.append(np.zeros(2, dtype=np.float32))
        batch.sightings.append(SightingRow(photo_id, "FP-000001", status, distance, None, None, None))
    batch.individuals.append(IndividualRow("FP-000001", 1, "left", "body", "0" * 16))
    store.write_batch(run_id, "abcdef123456", batch)
    console = Console(width=100, color_system=None, record=True, file=io.StringIO())
    console.print(
        report.history_report(
            store.query("individual", individual_id="FP-000001"),
            store.query("history", individual_id="FP-000001"),
        )
    )
    console.print(report.query_table(store.query("resightings"), "Re-sightings"))
    text = console.export_text()
    golden = Path(__file__).parent / "golden" / "history.txt"
    if os.environ.get("FINPRINT_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_each_sighting_says_what_decided_it_and_the_run_its_rule(
    survey_archive: Path, tmp_path: Path
) -> None:
    from catalog.decisions import confirm

    folders = sorted(p for p in survey_archive.iterdir() if p.is_dir())[:3]
    db = tmp_path / "c.duckdb"
    run_id = index(Settings(db_path=db, verify=False), folders).run_id
    with Store.open(db) as store:
        rows = store.query("run_sightings", run_id=run_id)
        first = rows.records()[0]
        confirm(store, [first["photo_id"]], "checked by eye")
        queries = [store.query(q, run_id=run_id) for q in ("run_summary", "run_sightings", "run_errors")]
    rows_now = queries[1].records()
    by_photo = {row["photo_id"]: row for row in rows_now}
    said = {report.decided_by(row) for row in by_photo.values()}
    assert report.decided_by(by_photo[first["photo_id"]]) == "a person (confirm)"
    # Verification was off: nothing says keypoints decided, and the run's rule says why.
    assert "distance + keypoints" not in said and "distance" in said
    console = Console(width=160, color_system=None, record=True, file=io.StringIO())
    console.print(report.run_report(*queries))
    text = " ".join(console.export_text().split())
    assert "Decided by a match needs a distance under" in text and "(embedding alone)" in text
    assert "tonight's photos of one animal" in text
