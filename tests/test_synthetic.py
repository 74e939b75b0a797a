"""The fish generator: deterministic, two different flanks, real EXIF."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from catalog.photos import read_exif
from catalog.synthetic import (
    GROUND_TRUTH_FILE,
    generate_archive,
    make_fish,
    read_ground_truth,
    render_flank,
)


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_archive(tmp_path: Path) -> None:
    generate_archive(tmp_path / "a", n_individuals=3, n_surveys=2, seed=9)
    generate_archive(tmp_path / "b", n_individuals=3, n_surveys=2, seed=9)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_other_seed_gives_other_fish(tmp_path: Path) -> None:
    generate_archive(tmp_path / "a", n_individuals=3, n_surveys=2, seed=9)
    generate_archive(tmp_path / "b", n_individuals=3, n_surveys=2, seed=10)
    assert set(_digest(tmp_path / "a").values()) != set(_digest(tmp_path / "b").values())


def test_left_and_right_flanks_carry_different_patterns() -> None:
    fish = make_fish("f", 4)
    left = np.asarray(render_flank(fish, "left"), dtype=np.float32)
    right_unmirrored = np.asarray(
        render_flank(fish, "right").transpose(Image.Transpose.FLIP_LEFT_RIGHT), dtype=np.float32
    )
    # Same outline (alpha) but different marks on the body.
    assert np.array_equal(left[:, :, 3] > 0, right_unmirrored[:, :, 3] > 0)
    assert np.abs(left[:, :, :3] - right_unmirrored[:, :, :3]).mean() > 3


def test_archive_has_survey_folders_exif_and_ground_truth(tmp_path: Path) -> None:
    truth = generate_archive(tmp_path, n_individuals=4, n_surveys=3, seed=1)
    assert truth == read_ground_truth(tmp_path / GROUND_TRUTH_FILE)
    assert {t.side for t in truth} == {"left", "right"}
    assert "body" in {t.crop for t in truth}
    first = truth[0]
    assert Path(first.path).parent.name == f"{first.survey_date}_{first.site}"
    with Image.open(tmp_path / first.path) as image:
        exif = read_exif(image)
    assert exif.taken_at is not None and exif.taken_at.date().isoformat() == first.survey_date
    assert exif.latitude is not None and 55 < exif.latitude < 65
    assert exif.longitude is not None and 0 < exif.longitude < 12
