"""WildlifeDatasets-style metadata tables: parsing, bounding-box crops, distractors, loud errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.errors import TrainingDataError
from catalog.modelcard import InputSpec
from catalog.offline.labels import read_metadata
from catalog.preprocess import load_image, preprocess, to_tensor
from catalog.synthetic import generate_labelled, make_fish, photograph

SPEC = InputSpec(64, 128, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
FIELDS = ["image_id", "identity", "path", "orientation", "date", "bbox", "species"]


def _write_table(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def melops_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tagged fish over two years, both flanks, head and body boxes in field photos, plus untagged fish."""
    root = tmp_path_factory.mktemp("melops")
    rng = np.random.default_rng(1)
    rows = []
    for fish_number in range(5):
        fish = make_fish(f"m{fish_number}", 500 + fish_number)
        identity = f"PIT{fish_number:04d}" if fish_number < 4 else "unknown"
        for year in (2019, 2020):
            for side in ("left", "right"):
                for crop in ("body", "head"):
                    subject = photograph(fish, side, crop, rng)
                    frame = Image.fromarray(rng.integers(0, 255, (480, 720, 3), dtype=np.uint8))
                    x, y = (
                        int(rng.integers(0, 720 - subject.width)),
                        int(rng.integers(0, 480 - subject.height)),
                    )
                    frame.paste(subject, (x, y))
                    name = f"{year}/{crop}/{identity}_{side}_{year}.jpg"
                    (root / name).parent.mkdir(parents=True, exist_ok=True)
                    frame.save(root / name, quality=92)
                    image_id = f"{fish_number}-{year}-{side}-{crop}"
                    rows.append(
                        {
                            "image_id": image_id,
                            "identity": identity,
                            "path": name,
                            "orientation": side,
                            "date": f"{year}-06-1{fish_number}",
                            "bbox": json.dumps([x, y, *subject.size]),
                            "species": "Symphodus melops",
                        }
                    )
    _write_table(root / "metadata.csv", rows)
    return root


def test_table_gives_identities_sides_dates_and_boxes(melops_like: Path) -> None:
    photos = read_metadata(melops_like / "metadata.csv")
    assert len(photos) == 40
    tagged = [p for p in photos if not p.individual.startswith("unknown:")]
    assert {p.individual for p in tagged} == {"PIT0000", "PIT0001", "PIT0002", "PIT0003"}
    assert {p.side for p in photos} == {"left", "right"} and {p.crop for p in photos} == {"head", "body"}
    assert all(p.bbox is not None and p.taken_on is not None for p in photos)
    # Each untagged photo is its own identity: it can only ever be a wrong match.
    untagged = [p for p in photos if p.individual.startswith("unknown:")]
    assert len({p.individual for p in untagged}) == len(untagged) == 8
    # One encounter is one fish on one day.
    assert len({p.encounter for p in tagged}) == 8


def test_bounding_box_crops_the_fish_out_of_the_frame(melops_like: Path) -> None:
    photo = read_metadata(melops_like / "metadata.csv")[0]
    assert photo.bbox is not None
    cropped = load_image(photo.path, SPEC, photo.bbox)
    # Draft decoding may halve the frame, but the crop keeps the box's shape and enough pixels.
    assert cropped.width >= SPEC.width and cropped.height >= SPEC.height
    assert abs(cropped.width / cropped.height - photo.bbox[2] / photo.bbox[3]) < 0.05
    x, y, width, height = photo.bbox
    with Image.open(photo.path) as full:
        expected = to_tensor(full.convert("RGB").crop((x, y, x + width, y + height)), SPEC)
    # Same pixels as a full-size decode cropped by hand, up to draft-mode smoothing.
    assert np.abs(preprocess(photo.path, SPEC, photo.bbox) - expected).mean() < 0.15
    assert np.abs(preprocess(photo.path, SPEC) - expected).mean() > 0.3


def test_box_survives_draft_decoding_of_a_large_photo(tmp_path: Path) -> None:
    frame = Image.new("RGB", (4000, 3000), (0, 0, 255))
    frame.paste(Image.new("RGB", (800, 400), (255, 0, 0)), (2000, 1500))
    frame.save(tmp_path / "big.jpg", quality=90)
    image = load_image(tmp_path / "big.jpg", SPEC, (2000, 1500, 800, 400))
    pixels = np.asarray(image, dtype=np.float32)
    assert image.width >= SPEC.width and image.height >= SPEC.height
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 60  # all red: the box, not the frame


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bbox": "[10, 20, 0, 5]"}, "line 2: bbox"),
        ({"bbox": "ten by twenty"}, "line 2: bbox"),
        ({"date": "June 2019"}, "line 2: date"),
        ({"path": "nowhere/photo.jpg"}, "--root"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, change: dict[str, str], message: str) -> None:
    Image.new("RGB", (40, 20)).save(tmp_path / "a.jpg")
    row = {"image_id": "1", "identity": "A", "path": "a.jpg", "orientation": "left", "date": "2019-06-01",
           "bbox": "[0, 0, 10, 10]"}  # fmt: skip
    _write_table(tmp_path / "t.csv", [{**row, **change}])
    with pytest.raises(TrainingDataError, match=message.replace("[", r"\[")):
        read_metadata(tmp_path / "t.csv")


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    _write_table(tmp_path / "t.csv", [{"file": "a.jpg", "individual": "A"}])
    with pytest.raises(TrainingDataError, match=r"missing column.*identity, path"):
        read_metadata(tmp_path / "t.csv")


@pytest.mark.slow
def test_evaluate_and_train_take_a_table(melops_like: Path, tmp_path: Path) -> None:
    from catalog.offline.evaluate import evaluate
    from catalog.settings import DEFAULT_MODEL_PATH

    result = evaluate(DEFAULT_MODEL_PATH, None, metadata=melops_like / "metadata.csv")
    assert result.photos == 40
    # Queries are the tagged photos with a partner outside their own encounter (other year).
    assert result.metrics.n_queries == 32
    pytest.importorskip("torch", reason="training needs the 'train' extra")
    from catalog.modelcard import read_card
    from catalog.train.loop import TrainConfig, train

    out = tmp_path / "m.onnx"
    train(TrainConfig(data_dirs=(), metadata=melops_like / "metadata.csv", out_path=out, epochs=1,
                      input_height=32, input_width=64, embedding_dim=16, individuals_per_batch=4,
                      photos_per_individual=2, validation_fraction=0.3))  # fmt: skip
    card = read_card(out)
    assert card.trained_on["dataset"] == "metadata.csv" and not card.trained_on["synthetic_only"]


def test_open_split_holds_new_fish_and_returning_encounters(melops_like: Path) -> None:
    from catalog.offline.labels import split_photos

    photos = [
        p for p in read_metadata(melops_like / "metadata.csv") if not p.individual.startswith("unknown:")
    ]
    train, test = split_photos(photos, "open", 0.5, seed=0)
    train_ids = {p.individual for p in train}
    assert {p.individual for p in test} - train_ids, "no new fish in the test part"
    assert {p.individual for p in test} & train_ids, "no known fish coming back"
    assert not {p.encounter for p in train} & {p.encounter for p in test}


def test_time_split_is_by_date_and_needs_one(melops_like: Path) -> None:
    from datetime import date

    from catalog.offline.labels import split_photos

    photos = read_metadata(melops_like / "metadata.csv")
    before, after = split_photos(photos, "time", 0.3, 0, date(2020, 1, 1))
    assert {p.taken_on.year for p in before if p.taken_on} == {2019}
    assert {p.taken_on.year for p in after if p.taken_on} == {2020}
    with pytest.raises(TrainingDataError, match="split-date"):
        split_photos(photos, "time", 0.3, 0, None)


def test_open_set_scores_by_hand() -> None:
    from catalog.offline.metrics import open_set_scores

    gallery = np.array([[0.0, 0.0], [10.0, 0.0]])
    queries = np.array([[0.1, 0.0], [9.0, 0.0], [5.0, 5.0], [0.2, 0.0]])
    # A right, A-called-B wrong (B is at 1.0 < 2), new fish C called new, new fish D called A.
    scores = open_set_scores(gallery, ["A", "B"], queries, ["A", "A", "C", "D"], threshold=2.0)
    assert scores.known_balanced_accuracy == 0.5  # A: one of two right
    assert scores.unknown_balanced_accuracy == 0.5  # C right, D wrong, averaged per fish
    assert (scores.known_queries, scores.unknown_queries) == (2, 2)


def test_evaluate_next_season_gives_open_set_scores(melops_like: Path) -> None:
    from datetime import date

    from catalog.offline.evaluate import Holdout, evaluate
    from catalog.settings import DEFAULT_MODEL_PATH

    holdout = Holdout("time", date(2020, 1, 1))
    result = evaluate(DEFAULT_MODEL_PATH, None, metadata=melops_like / "metadata.csv", holdout=holdout)
    assert result.open_set is not None
    assert result.open_set.known_queries + result.open_set.unknown_queries == 20
    assert 0.0 <= result.open_set.known_balanced_accuracy <= 1.0


def test_evaluate_on_a_folder_of_unreadable_photos_is_a_one_line_error(tmp_path: Path) -> None:
    from catalog.offline.evaluate import evaluate
    from catalog.settings import DEFAULT_MODEL_PATH

    for individual in ("a", "b"):
        (tmp_path / individual).mkdir()
        for n in range(2):
            (tmp_path / individual / f"{n}.jpg").write_bytes(b"not a jpeg at all")
    unreadable = r"none of the 4 labelled photos could be read \(e\.g\. .*0\.jpg"
    with pytest.raises(TrainingDataError, match=unreadable):
        evaluate(DEFAULT_MODEL_PATH, tmp_path)


def test_evaluate_on_a_survey_archive_says_it_is_not_labelled(survey_archive: Path) -> None:
    from catalog.offline.evaluate import evaluate
    from catalog.settings import DEFAULT_MODEL_PATH

    # Its folders are survey nights: scored as animals, every figure would be meaningless.
    with pytest.raises(TrainingDataError, match="survey archive, not photos labelled by individual"):
        evaluate(DEFAULT_MODEL_PATH, survey_archive)


def test_evaluate_still_takes_a_folder_per_individual(tmp_path: Path) -> None:
    from catalog.offline.labels import read_labelled, refuse_survey_archive

    # Names decide here, so two fish are enough (the session's labelled set takes 3 s to draw).
    labelled = tmp_path / "labelled"
    generate_labelled(labelled, n_individuals=2, photos_per_view=1, seed=5)
    refuse_survey_archive(read_labelled(labelled), labelled)  # no error: names, not dates
