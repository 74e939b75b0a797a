"""Evidence that is not the animal joins nothing: stamps, a shared board and colour card, two fish
in one frame cut twice, a photo and its copy, indexed with the shipped model and verification on."""

from __future__ import annotations

import io
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from catalog import verify
from catalog.cli import app
from catalog.fusion import sidecar_path
from catalog.night import index
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.store import Store
from catalog.synthetic import GROUND_TRUTH_FILE, Traps, generate_archive, read_ground_truth
from catalog.vocabulary import Caution

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not verify.available(), reason="keypoint verification needs OpenCV (finprint[verify])"
    ),
    pytest.mark.skipif(
        not sidecar_path(DEFAULT_MODEL_PATH).is_file(), reason="the default model has no fusion"
    ),
]


def _automatic_individuals(db: Path, archive: Path) -> dict[str, set[str]]:
    """Found individual -> the drawn fish of the photos joined to it without a person (a sighting
    in review is a question, not a merge)."""
    truth = {row.path: row.fish_id for row in read_ground_truth(archive / GROUND_TRUTH_FILE)}
    with Store.open(db, read_only=True) as store:
        rows = store.read_only_sql(
            "SELECT min(pp.path), s.individual_id FROM sightings s JOIN photo_paths pp USING (photo_id) "
            "WHERE s.status <> 'review' GROUP BY s.photo_id, s.individual_id"
        ).rows
    fish_of: dict[str, set[str]] = defaultdict(set)
    for path, individual in rows:
        fish_of[str(individual)].add(truth[Path(str(path)).relative_to(archive).as_posix()])
    return fish_of


def _indexed(tmp_path: Path, traps: Traps) -> tuple[Path, Path]:
    archive = tmp_path / "archive"
    generate_archive(archive, n_individuals=14, n_surveys=5, seed=8, traps=traps)
    db = tmp_path / "c.duckdb"
    index(Settings(db_path=db), [archive])
    return archive, db


@pytest.mark.parametrize(
    "traps",
    [Traps(stamp=True), Traps(board=True)],
    ids=["a logo and date imprint on every photo", "every fish on one board with a ruler and a colour card"],
)
def test_what_every_photo_shows_besides_the_fish_joins_no_two_fish(tmp_path: Path, traps: Traps) -> None:
    archive, db = _indexed(tmp_path, traps)
    joined = _automatic_individuals(db, archive)
    mixed = {individual: fish for individual, fish in joined.items() if len(fish) > 1}
    assert not mixed
    # Not by refusing everything: fish seen again are still recognised.
    assert sum(1 for fish in joined.values() if fish) < len(list(archive.rglob("*.jpg")))


def test_two_crops_of_one_frame_holding_both_fish_stay_two_individuals(tmp_path: Path) -> None:
    archive, db = _indexed(tmp_path, Traps(two_fish_share=0.5))
    joined = _automatic_individuals(db, archive)
    assert not {individual: fish for individual, fish in joined.items() if len(fish) > 1}
    with Store.open(db, read_only=True) as store:
        cut_twice = store.read_only_sql(
            f"SELECT count(*) FROM sightings WHERE caution = '{Caution.ONE_PHOTOGRAPH.value}'"
        ).rows[0][0]
    pairs = list(archive.rglob("*_paira_*.jpg"))
    assert pairs and cut_twice > 0  # the second crop of a frame was seen as one photograph


def test_a_photo_and_its_resized_re_encoded_copy_are_reported_as_one_photograph(
    survey_archive: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    first_survey = sorted(p for p in survey_archive.iterdir() if p.is_dir())[0]
    shutil.copytree(first_survey, archive / first_survey.name)
    db = tmp_path / "c.duckdb"
    index(Settings(db_path=db), [archive])
    original = sorted((archive / first_survey.name).glob("*_left_body.jpg"))[0]
    with Image.open(original) as photo:
        buffer = io.BytesIO()
        photo.resize((photo.width * 3 // 4, photo.height * 3 // 4)).save(buffer, "JPEG", quality=80)
    copy_folder = archive / "2024-09-01_Skarholmen"
    copy_folder.mkdir()
    (copy_folder / "copy_left_body.jpg").write_bytes(buffer.getvalue())
    index(Settings(db_path=db), [archive])
    with Store.open(db, read_only=True) as store:
        status, caution, matched = store.read_only_sql(
            "SELECT s.status, s.caution, m.path FROM sightings s JOIN photo_paths p USING (photo_id) "
            "JOIN photo_paths m ON m.photo_id = s.matched_photo_id WHERE p.path LIKE '%copy_left_body.jpg'"
        ).rows[0]
    assert (status, caution, Path(str(matched)).name) == ("review", Caution.ONE_PHOTOGRAPH, original.name)
    queue = CliRunner().invoke(app, ["review", "--db", str(db), "--format", "csv"])
    assert queue.exit_code == 0, queue.output
    assert "one photograph seen twice" in queue.output
