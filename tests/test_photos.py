"""Walking an archive and reading survey fields from paths and EXIF."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import pytest
from PIL import Image

from catalog.errors import FinprintError
from catalog.photos import PathFields, PathPattern, parse_path_fields, read_exif, walk


def test_walk_finds_images_skips_hidden_and_survives_symlink_loops(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.jpg", "a/b/two.PNG", "a/.hidden.jpg", "a/b/three.webp"):
        Image.new("RGB", (4, 4)).save(tmp_path / name, format="PNG")
    (tmp_path / "a" / "notes.txt").write_text("not a photo")
    (tmp_path / ".git").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / ".git" / "inside.jpg", format="PNG")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")
    found = sorted(f.path.relative_to(tmp_path).as_posix() for f in walk(tmp_path))
    assert found == ["a/b/three.webp", "a/b/two.PNG", "a/one.jpg"]


def test_conventional_fields_from_survey_folder_and_name_tokens(tmp_path: Path) -> None:
    path = tmp_path / "2024-06-03_Skarholmen" / "GoPro2" / "IMG_7_right_head.jpg"
    assert parse_path_fields(path, tmp_path) == PathFields(
        date(2024, 6, 3), "Skarholmen", "GoPro2", "right", "head"
    )


def test_pattern_gives_fields_and_convention_fills_the_rest(tmp_path: Path) -> None:
    pattern = PathPattern("{site}/{date}/{camera}/*")
    path = tmp_path / "Hille" / "20240612" / "cam1" / "DSC_1_left.jpg"
    assert parse_path_fields(path, tmp_path, pattern) == PathFields(
        date(2024, 6, 12), "Hille", "cam1", "left", None
    )


def test_pattern_that_does_not_fit_falls_back_to_convention(tmp_path: Path) -> None:
    pattern = PathPattern("{site}/{date}/{camera}/*")
    path = tmp_path / "2024-06-03_Skarholmen" / "IMG_1.jpg"
    assert parse_path_fields(path, tmp_path, pattern).site == "Skarholmen"


def test_side_and_crop_fields_are_normalised() -> None:
    fields = PathPattern("{date}_{site}/{side}/{crop}").fields("2024-06-03_Hille/R/Body/x.jpg")
    assert fields is not None and (fields.side, fields.crop) == ("right", "body")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("{date}_{place}/*", "unknown field {place}"), ("{date/*", "unbalanced"), ("{site}/{site}", "twice")],
)
def test_bad_patterns_are_named_with_the_fix(pattern: str, message: str) -> None:
    with pytest.raises(FinprintError, match=message.replace("{", r"\{").replace("}", r"\}")) as caught:
        PathPattern(pattern)
    assert "finprint.toml" in str(caught.value)


def test_exif_time_offset_and_gps_south_west(tmp_path: Path) -> None:
    exif = Image.Exif()
    details = exif.get_ifd(0x8769)
    details[0x9003] = "2024:06:03 09:05:00"
    details[0x9011] = "+02:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 30.0, 0.0), "W", (70.0, 15.0, 36.0)
    path = tmp_path / "x.jpg"
    Image.new("RGB", (8, 8)).save(path, exif=exif.tobytes())
    with Image.open(path) as image:
        facts = read_exif(image)
    assert facts.taken_at == datetime(2024, 6, 3, 9, 5) and facts.utc_offset == "+02:00"
    assert facts.latitude == pytest.approx(-33.5) and facts.longitude == pytest.approx(-70.26)


def test_impossible_exif_date_is_ignored(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    path = tmp_path / "x.jpg"
    Image.new("RGB", (8, 8)).save(path, exif=exif.tobytes())
    with Image.open(path) as image:
        assert read_exif(image).taken_at is None


@pytest.mark.parametrize(
    ("folder", "site"),
    [
        ("2024-06-03_Skarholmen", "Skarholmen"),
        ("2024-06-03 Skarholmen", "Skarholmen"),
        ("2024-06-03-Skarholmen", "Skarholmen"),
        ("2024-06-03 - Skarholmen", "Skarholmen"),
        ("2024-06-03__Skarholmen", "Skarholmen"),
        ("2024-06-06_-2+3", "-2+3"),
        ("2024-06-06 +2", "+2"),
        ("2024-06-06", None),
    ],
)
def test_survey_folder_separators_leave_the_site_whole(tmp_path: Path, folder: str, site: str | None) -> None:
    fields = parse_path_fields(tmp_path / folder / "IMG_1.jpg", tmp_path)
    assert fields.survey_date == date(2024, 6, 3 if "03" in folder else 6)
    assert fields.site == site
