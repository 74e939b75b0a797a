"""Exports on a small hand-built catalogue: golden files, parsed back, and filters."""

from __future__ import annotations

import csv
import json
import os
import zipfile
from datetime import date, datetime
from pathlib import Path
from xml.etree import ElementTree

import duckdb
import numpy as np
import pytest

from catalog.store import Batch, IndividualRow, PhotoRow, SightingRow, Store
from exporters.capture_history import export_capture_history
from exporters.darwin_core import OCCURRENCE_TERMS, DatasetMetadata, export_darwin_core
from exporters.geojson import export_geojson
from exporters.selection import ExportFilter
from exporters.tabular import export_csv, export_json, export_parquet

GOLDEN = Path(__file__).parent / "golden"
# Set FINPRINT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change; review the diff.
UPDATE = os.environ.get("FINPRINT_UPDATE_GOLDEN") == "1"

# (photo, individual, status, distance, taken_at, survey date, site, lat, lon, side, path)
SIGHTINGS = [
    (
        "p1",
        "FP-000001",
        "new",
        None,
        datetime(2024, 6, 3, 9, 5),
        date(2024, 6, 3),
        "Skarholmen",
        60.1,
        5.2,
        "left",
        "2024-06-03_Skarholmen/IMG_1_left_body.jpg",
    ),
    (
        "p2",
        "FP-000002",
        "new",
        None,
        datetime(2024, 6, 3, 9, 9),
        date(2024, 6, 3),
        "Skarholmen",
        60.1,
        5.2,
        "left",
        "2024-06-03_Skarholmen/IMG_2_left_body.jpg",
    ),
    (
        "p3",
        "FP-000001",
        "matched",
        0.41,
        datetime(2024, 6, 10, 10, 0),
        date(2024, 6, 10),
        "Hillesoy",
        60.3,
        5.0,
        "left",
        "2024-06-10_Hillesoy/IMG_3 <script>alert(1)</script>, copy.jpg",
    ),
    (
        "p4",
        "FP-000003",
        "new",
        None,
        None,
        date(2024, 6, 10),
        "Hillesoy",
        None,
        None,
        "right",
        "2024-06-10_Hillesoy/IMG_4_right\tbody.jpg",
    ),
    (
        "p5",
        "FP-000002",
        "confirmed",
        0.52,
        datetime(2024, 6, 17, 8, 30),
        date(2024, 6, 17),
        "Skarholmen",
        60.1,
        5.2,
        "left",
        "2024-06-17_Skarholmen/IMG_5_left_body.jpg",
    ),
]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "small.duckdb")
    run_id = opened.start_run("abcdef123456", 0.9, "test", ["archive"])
    batch = Batch()
    for photo, individual, status, distance, taken_at, survey, site, lat, lon, side, path in SIGHTINGS:
        batch.photos.append(
            PhotoRow(
                photo,
                path,
                1000,
                1,
                640,
                480,
                taken_at,
                lat,
                lon,
                survey,
                site,
                None,
                side,
                "body",
                # One camera wrote its UTC offset: exports must keep it.
                taken_at_utc_offset="+02:00" if photo == "p1" else None,
            )
        )
        batch.vectors.append(np.zeros(4, dtype=np.float32))
        batch.sightings.append(SightingRow(photo, individual, status, distance, None, None, None))
        if status == "new":
            batch.individuals.append(IndividualRow(individual, int(individual[3:]), side, "body", photo))
    opened.write_batch(run_id, "abcdef123456", batch)
    return opened


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8", newline="")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def test_csv_golden_and_contract_columns(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "photos.csv"
    assert export_csv(store, out) == 5
    _golden("photos.csv", out.read_text(encoding="utf-8"))
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:7] == ["path", "individual_id", "taken_at", "site", "side", "distance", "status"]
    assert {"photo_id", "sha256", "run_id", "model_version"} <= set(rows[0])
    assert any("<script>" in r["path"] for r in rows)  # quoted, not mangled


def test_json_and_parquet_hold_the_same_rows(store: Store, tmp_path: Path) -> None:
    export_json(store, tmp_path / "photos.json")
    export_parquet(store, tmp_path / "photos.parquet")
    as_json = json.loads((tmp_path / "photos.json").read_text(encoding="utf-8"))
    as_parquet = duckdb.sql(
        f"SELECT path, individual_id, distance FROM '{tmp_path / 'photos.parquet'}'"
    ).fetchall()
    assert [(r["path"], r["individual_id"], r["distance"]) for r in as_json] == as_parquet
    assert as_json[0]["taken_at"] == "2024-06-03T09:05:00"


def test_darwin_core_archive_parses_back(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "dwca.zip"
    assert export_darwin_core(store, out, DatasetMetadata()) == 5
    archive = zipfile.ZipFile(out)
    assert set(archive.namelist()) == {"occurrence.txt", "meta.xml", "eml.xml"}
    occurrences = archive.read("occurrence.txt").decode("utf-8")
    _golden("occurrence.txt", occurrences)
    _golden("meta.xml", archive.read("meta.xml").decode("utf-8"))
    meta = ElementTree.fromstring(archive.read("meta.xml"))
    ns = {"d": "http://rs.tdwg.org/dwc/text/"}
    fields = {
        int(f.get("index", -1)): f.get("term", "").rsplit("/", 1)[1] for f in meta.iterfind(".//d:field", ns)
    }
    lines = occurrences.rstrip("\n").split("\n")
    header = lines[0].split("\t")
    # meta.xml's indexes name the columns that are really there.
    assert [fields[i] for i in range(len(header))] == header == list(OCCURRENCE_TERMS)
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert {r["organismID"] for r in rows} == {"FP-000001", "FP-000002", "FP-000003"}
    assert rows[0]["eventDate"] == "2024-06-03T09:05:00+02:00"
    assert rows[1]["eventDate"] == "2024-06-03T09:09:00"
    by_id = {r["occurrenceID"]: r for r in rows}
    assert by_id["finprint:p5"]["basisOfRecord"] == "HumanObservation"
    assert by_id["finprint:p1"]["basisOfRecord"] == "MachineObservation"
    assert by_id["finprint:p4"]["decimalLatitude"] == ""
    assert by_id["finprint:p1"]["scientificName"] == "Symphodus melops"
    assert "abcdef123456" in by_id["finprint:p1"]["identifiedBy"]
    assert {r["occurrenceStatus"] for r in rows} == {"present"}
    assert {r["kingdom"] for r in rows} == {"Animalia"}
    assert by_id["finprint:p1"]["eventID"] == "Skarholmen/2024-06-03"
    # A path on this machine means nothing to GBIF: associatedMedia holds URLs only.
    assert {r["associatedMedia"] for r in rows} == {""}
    eml = ElementTree.fromstring(archive.read("eml.xml"))
    assert eml.findtext("dataset/title") == "finprint sightings of Symphodus melops"
    # What GBIF's validator requires of a dataset's metadata.
    assert eml.findtext("dataset/pubDate") and eml.findtext("dataset/language") == "en"
    assert eml.findtext("dataset/contact/organizationName") == "finprint catalogue"
    licence = eml.find("dataset/intellectualRights/para/ulink")
    assert (
        licence is not None and licence.get("url") == "http://creativecommons.org/licenses/by/4.0/legalcode"
    )


def test_capture_history_mark_and_rmark(store: Store, tmp_path: Path) -> None:
    assert len(export_capture_history(store, tmp_path / "h.inp").histories) == 3
    _golden("capture.inp", (tmp_path / "h.inp").read_text(encoding="utf-8"))
    export_capture_history(store, tmp_path / "h.csv", group_by_site=True)
    _golden("capture_rmark.csv", (tmp_path / "h.csv").read_text(encoding="utf-8"))
    export_capture_history(store, tmp_path / "g.inp", group_by_site=True)
    assert "/* FP-000003 */ 010 1 0;" in (tmp_path / "g.inp").read_text(encoding="utf-8")


def test_capture_history_bins_given_by_the_user(store: Store, tmp_path: Path) -> None:
    export_capture_history(store, tmp_path / "h.inp", occasion_starts=[date(2024, 6, 1), date(2024, 6, 15)])
    lines = (tmp_path / "h.inp").read_text(encoding="utf-8").splitlines()
    assert "/* FP-000001 */ 10 1;" in lines
    assert "/* FP-000002 */ 11 1;" in lines


def test_capture_history_refuses_other_file_types(store: Store, tmp_path: Path) -> None:
    from catalog.errors import FinprintError

    with pytest.raises(FinprintError, match=r"\.inp"):
        export_capture_history(store, tmp_path / "h.txt")


def test_geojson_points_leave_out_sightings_without_gps(store: Store, tmp_path: Path) -> None:
    written, without = export_geojson(store, tmp_path / "p.geojson")
    assert (written, without) == (4, 1)
    text = (tmp_path / "p.geojson").read_text(encoding="utf-8")
    _golden("points.geojson", text)
    first = json.loads(text)["features"][0]
    assert first["geometry"]["coordinates"] == [5.2, 60.1]
    assert first["properties"]["individual_id"] == "FP-000001"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (ExportFilter(since=date(2024, 6, 10)), {"p3", "p4", "p5"}),
        (ExportFilter(until=date(2024, 6, 3)), {"p1", "p2"}),
        (ExportFilter(site="Hillesoy"), {"p3", "p4"}),
        (ExportFilter(individual="FP-000002"), {"p2", "p5"}),
        (ExportFilter(since=date(2024, 6, 4), site="Skarholmen"), {"p5"}),
    ],
)
def test_filters_select_sightings(
    store: Store, tmp_path: Path, selection: ExportFilter, expected: set[str]
) -> None:
    out = tmp_path / "f.csv"
    export_csv(store, out, selection)
    with out.open(newline="", encoding="utf-8") as handle:
        assert {r["photo_id"] for r in csv.DictReader(handle)} == expected
    export_darwin_core(store, tmp_path / "f.zip", DatasetMetadata(), selection)
    lines = zipfile.ZipFile(tmp_path / "f.zip").read("occurrence.txt").decode().strip().split("\n")[1:]
    assert {line.split("\t")[0].removeprefix("finprint:") for line in lines} == expected


def test_spreadsheet_safe_exports_keep_formulas_as_text(tmp_path: Path) -> None:
    hostile = Store.open(tmp_path / "hostile.duckdb")
    run_id = hostile.start_run("abcdef123456", 0.9, "test", ["archive"])
    batch = Batch()
    for number, site in enumerate(['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "Hillesoy"], start=1):
        photo = f"q{number}"
        batch.photos.append(
            PhotoRow(photo, f"{number}.jpg", 1, 1, 8, 8, None, None, None, date(2024, 6, number), site,
                     None, "left", "body")
        )  # fmt: skip
        batch.vectors.append(np.zeros(4, dtype=np.float32))
        batch.sightings.append(SightingRow(photo, f"FP-00000{number}", "new", None, None, None, None))
        batch.individuals.append(IndividualRow(f"FP-00000{number}", number, "left", "body", photo))
    hostile.write_batch(run_id, "abcdef123456", batch)

    def sites(path: Path) -> list[str]:
        with path.open(newline="", encoding="utf-8") as handle:
            return [row["site"] for row in csv.DictReader(handle)]

    export_csv(hostile, tmp_path / "raw.csv")
    export_csv(hostile, tmp_path / "safe.csv", spreadsheet_safe=True)
    assert sites(tmp_path / "raw.csv")[0] == '=HYPERLINK("http://x")'  # as recorded, by default
    assert sorted(sites(tmp_path / "safe.csv")) == [
        "'+cmd|' /C calc'!A0",
        '\'=HYPERLINK("http://x")',
        "Hillesoy",
    ]
    export_darwin_core(hostile, tmp_path / "safe.zip", DatasetMetadata(), spreadsheet_safe=True)
    with zipfile.ZipFile(tmp_path / "safe.zip") as archive:
        occurrences = archive.read("occurrence.txt").decode("utf-8")
    assert "\t=" not in occurrences and "\t'=HYPERLINK" in occurrences
    export_capture_history(hostile, tmp_path / "safe-rmark.csv", group_by_site=True, spreadsheet_safe=True)
    with (tmp_path / "safe-rmark.csv").open(newline="", encoding="utf-8") as handle:
        groups = {row["site"] for row in csv.DictReader(handle)}
    assert groups == {'\'=HYPERLINK("http://x")', "'+cmd|' /C calc'!A0", "Hillesoy"}


def test_a_filter_that_matches_nothing_says_which(store: Store, tmp_path: Path) -> None:
    from exporters.formats import ExportFormat, export

    misspelt = ExportFilter(site="Skarholmn")
    message = export(store, ExportFormat.CSV, tmp_path / "x.csv", misspelt, DatasetMetadata())
    assert message.startswith("Wrote 0 rows") and "--site Skarholmn" in message
    right = export(
        store, ExportFormat.CSV, tmp_path / "y.csv", ExportFilter(site="Skarholmen"), DatasetMetadata()
    )
    assert "Nothing matched" not in right


def test_linked_flanks_are_one_animal_in_what_leaves_the_catalogue(store: Store, tmp_path: Path) -> None:
    from catalog import decisions

    assert len(export_capture_history(store, tmp_path / "before.inp").histories) == 3
    # FP-000001 is a left flank, FP-000003 a right one: the two sides of one fish.
    decisions.link(store, "FP-000001", "FP-000003", "both flanks of the tagged fish")
    # MARK would otherwise count a fish photographed on both sides twice.
    assert len(export_capture_history(store, tmp_path / "after.inp").histories) == 2
    export_darwin_core(store, tmp_path / "a.zip", DatasetMetadata())
    lines = zipfile.ZipFile(tmp_path / "a.zip").read("occurrence.txt").decode().strip().split("\n")
    header = lines[0].split("\t")
    rows = {r["occurrenceID"]: r for r in (dict(zip(header, x.split("\t"), strict=True)) for x in lines[1:])}
    assert {r["organismID"] for r in rows.values()} == {"FP-000001", "FP-000002"}
    assert rows["finprint:p4"]["organismID"] == "FP-000001"
    assert "catalogue entry FP-000003" in rows["finprint:p4"]["occurrenceRemarks"]
    # Per side: the left flanks are two animals, the right flank is the linked fish.
    assert len(export_capture_history(store, tmp_path / "left.inp", ExportFilter(side="left")).histories) == 2
    assert (
        len(export_capture_history(store, tmp_path / "right.inp", ExportFilter(side="right")).histories) == 1
    )
    assert "FP-000001" in (tmp_path / "right.inp").read_text(encoding="utf-8")


def test_merging_two_flanks_warns_to_link_them_instead(store: Store) -> None:
    from catalog import decisions

    warning = decisions.view_mismatch(store, "FP-000001", "FP-000003")
    assert warning is not None and "left flank" in warning and "finprint link FP-000001 FP-000003" in warning
    assert decisions.view_mismatch(store, "FP-000001", "FP-000002") is None


def test_darwin_core_names_who_photographed_and_who_decided(
    survey_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    from catalog.decisions import confirm
    from catalog.night import index
    from catalog.settings import Settings

    db = tmp_path / "c.duckdb"
    index(Settings(db_path=db, verify=False), sorted(p for p in survey_archive.iterdir() if p.is_dir())[:2])
    monkeypatch.setattr(getpass, "getuser", lambda: "ane.biologist")
    with Store.open(db) as store:
        decided = store.read_only_sql("SELECT photo_id FROM sightings ORDER BY photo_id LIMIT 1").rows[0][0]
        confirm(store, [decided], "gill-cover scar")
        out = tmp_path / "dwca.zip"
        export_darwin_core(store, out, DatasetMetadata(recorded_by="IMR Austevoll dive team"))
    lines = zipfile.ZipFile(out).read("occurrence.txt").decode("utf-8").rstrip("\n").split("\n")
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"), strict=True)) for line in lines[1:]]
    by_id = {row["occurrenceID"]: row for row in rows}
    assert by_id[f"finprint:{decided}"]["identifiedBy"] == "ane.biologist"
    others = [row for key, row in by_id.items() if key != f"finprint:{decided}"]
    assert others and all(row["identifiedBy"].startswith("finprint ") for row in others)
    assert {row["recordedBy"] for row in rows} == {"IMR Austevoll dive team"}
