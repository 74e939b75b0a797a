"""Labelled photo sets for training and evaluation: a folder per individual or `<id>_<side>_*` names."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from catalog.errors import TrainingDataError
from catalog.photos import IMAGE_SUFFIXES, side_from_tokens, walk
from catalog.vocabulary import Sides

_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_CROPS = {"head", "body"}
# Tokens that say which video sequence or survey visit a photo came from.
_ENCOUNTER = re.compile(r"(?:^|_)(seq\d+|enc\d+|visit\d+)(?:_|$)", re.IGNORECASE)


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo with the individual it shows."""

    path: Path
    individual: str
    side: str | None
    crop: str | None
    # Photos of one encounter (video sequence, survey visit) are never each other's match.
    encounter: str
    # Where the animal is, in pixels of the upright photo: (x, y, width, height).
    bbox: tuple[float, float, float, float] | None = None
    taken_on: date | None = None

    def class_key(self, sides: Sides) -> str:
        """The identity a network must learn: flanks are separate unless sides are merged."""
        side = self.side if sides == Sides.SPLIT and self.side else "*"
        return f"{self.individual}|{side}|{self.crop or '*'}"


def read_labelled(data_dir: Path, crop: str | None = None) -> list[LabelledPhoto]:
    """Find every labelled photo under `data_dir`, optionally only one crop (head or body)."""
    if not data_dir.is_dir():
        raise TrainingDataError(f"{data_dir}: no such folder. Give a folder of labelled photos.")
    photos: list[LabelledPhoto] = []
    for found in walk(data_dir):
        if found.path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        relative = found.path.relative_to(data_dir)
        tokens = [t for part in relative.parts for t in _TOKEN_SPLIT.split(Path(part).stem.lower()) if t]
        side = side_from_tokens(tokens)
        photo_crop = next((t for t in tokens if t in _CROPS), None)
        # A folder per individual, or a flat folder of the institute's `<id>_<side>_*.jpg` names.
        individual = relative.parts[0] if len(relative.parts) > 1 else relative.stem.split("_")[0]
        match = _ENCOUNTER.search(relative.stem)
        encounter = f"{individual}/{match[1].lower()}" if match else str(relative)
        photos.append(LabelledPhoto(found.path, individual, side, photo_crop, encounter))
    if crop is not None:
        photos = [p for p in photos if p.crop == crop]
    if not photos:
        raise TrainingDataError(
            f"{data_dir}: no labelled photos found. Use DATA/<individual>/*.jpg or "
            "<individual>_<side>_*.jpg names."
        )
    return photos


_SURVEY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}")


def refuse_survey_archive(photos: list[LabelledPhoto], data_dir: Path) -> None:
    """A survey archive (folders named by date) read as labelled photos would score survey nights
    as if they were animals: say so instead of printing meaningless figures."""
    individuals = {photo.individual for photo in photos}
    dated = [name for name in individuals if _SURVEY_FOLDER.match(name)]
    if individuals and len(dated) * 2 >= len(individuals):
        raise TrainingDataError(
            f"{data_dir}: its folders are named by date ({sorted(dated)[0]}, ...): a survey archive, not "
            "photos labelled by individual. Give DATA/<individual>/*.jpg, or a --metadata table."
        )


def read_sources(
    data_dirs: tuple[Path, ...] | list[Path],
    metadata: Path | None = None,
    metadata_root: Path | None = None,
    crop: str | None = None,
) -> list[LabelledPhoto]:
    """Every labelled photo of several folders (and a metadata table); with more than one source,
    individuals and encounters are prefixed `<folder>/`, since two sets may both call an animal "10"."""
    sources: list[tuple[str, list[LabelledPhoto]]] = [
        (data_dir.name, read_labelled(data_dir, crop)) for data_dir in data_dirs
    ]
    if metadata is not None:
        sources.append((metadata.stem, read_metadata(metadata, metadata_root, crop)))
    if len(sources) == 1:
        return sources[0][1]
    return [
        replace(photo, individual=f"{name}/{photo.individual}", encounter=f"{name}/{photo.encounter}")
        for name, photos in sources
        for photo in photos
    ]


def source_of(photo: LabelledPhoto) -> str:
    """The source set `read_sources` prefixed the photo's individual with ("" for a single source)."""
    return photo.individual.split("/", 1)[0] if "/" in photo.individual else ""


def split_by_individual(
    photos: list[LabelledPhoto],
    validation_fraction: float,
    seed: int,
    fold: int | None = None,
    folds: int = 0,
) -> tuple[list[LabelledPhoto], list[LabelledPhoto]]:
    """Train/validation split by individual, never by photo, so validation fish are unseen.
    With `folds` > 1, the individuals (in a seeded order) are cut into that many folds and fold
    number `fold` is held out: k-fold by individual, for sets too small for one split."""
    import numpy as np

    individuals = sorted({p.individual for p in photos})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(individuals))
    if folds > 1:
        if fold is None or not 0 <= fold < folds:
            raise TrainingDataError(f"fold must be 0..{folds - 1}, not {fold}.")
        held_out = {individuals[i] for i in np.array_split(order, folds)[fold]}
        return (
            [p for p in photos if p.individual not in held_out],
            [p for p in photos if p.individual in held_out],
        )
    n_validation = max(1, round(len(individuals) * validation_fraction)) if validation_fraction > 0 else 0
    held_out = {individuals[i] for i in order[:n_validation]}
    train = [p for p in photos if p.individual not in held_out]
    validation = [p for p in photos if p.individual in held_out]
    return train, validation


SPLITS = ("disjoint", "open", "time")


def split_photos(
    photos: list[LabelledPhoto],
    mode: str,
    test_fraction: float,
    seed: int,
    split_date: date | None = None,
) -> tuple[list[LabelledPhoto], list[LabelledPhoto]]:
    """Train/test split that matches how the catalogue is used; encounters never straddle it.

    disjoint: the test individuals were never seen (the seed study's protocol).
    open: some individuals are new, and the known ones come back in a later encounter.
    time: everything before `split_date` trains, everything from it on tests ("next season")."""
    if mode == "disjoint":
        return split_by_individual(photos, test_fraction, seed)
    if mode == "time":
        if split_date is None:
            raise TrainingDataError("--split time needs --split-date YYYY-MM-DD.")
        before: list[LabelledPhoto] = []
        after: list[LabelledPhoto] = []
        for photo in photos:
            if photo.taken_on is None:
                raise TrainingDataError(f"--split time needs a date for every photo; {photo.path} has none.")
            (before if photo.taken_on < split_date else after).append(photo)
        return before, after
    if mode != "open":
        raise TrainingDataError(f"unknown split {mode!r}: use one of {', '.join(SPLITS)}.")
    known, new = split_by_individual(photos, test_fraction / 2, seed)
    train: list[LabelledPhoto] = []
    test = list(new)
    by_individual: dict[str, list[LabelledPhoto]] = {}
    for photo in known:
        by_individual.setdefault(photo.individual, []).append(photo)
    for individual_photos in by_individual.values():
        encounters = sorted({p.encounter for p in individual_photos})
        # A known fish's last encounter comes back as a test sighting, when it has two or more.
        returning = encounters[-1] if len(encounters) > 1 else None
        train += [p for p in individual_photos if p.encounter != returning]
        test += [p for p in individual_photos if p.encounter == returning]
    return train, test


# Identities that mean "nobody knows": such photos are only ever distractors.
UNKNOWN_IDENTITIES = frozenset({"", "unknown", "-1", "nan", "none"})
METADATA_REQUIRED = ("identity", "path")


def read_metadata(table: Path, root: Path | None = None, crop: str | None = None) -> list[LabelledPhoto]:
    """Photos from a metadata table in the WildlifeDatasets convention: one row per photo with
    `identity` and `path` (relative to `root`, default the table's folder), and when present
    `image_id`, `orientation`, `date`, `bbox` ([x, y, w, h] in pixels). Unknown identities
    become distractors: each such photo is its own identity, so it can only be a wrong match."""
    if not table.is_file():
        raise TrainingDataError(f"{table}: no such metadata table.")
    root = root or table.parent
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in METADATA_REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise TrainingDataError(
                f"{table}: missing column(s) {', '.join(missing)}; found "
                f"{', '.join(reader.fieldnames or [])}. A WildlifeDatasets table needs identity and path."
            )
        rows = list(reader)
    photos: list[LabelledPhoto] = []
    absent: list[str] = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        path = root / row["path"]
        if not path.is_file():
            absent.append(row["path"])
            continue
        identity = row["identity"].strip()
        image_id = (row.get("image_id") or row["path"]).strip()
        if identity.lower() in UNKNOWN_IDENTITIES:
            identity = f"unknown:{image_id}"
        orientation = (row.get("orientation") or "").strip().lower()
        side = orientation if orientation in ("left", "right") else None
        taken_on = _parse_date(row.get("date"), table, number)
        bbox = _parse_bbox(row.get("bbox"), table, number)
        photo_crop = next((t for t in _TOKEN_SPLIT.split(row["path"].lower()) if t in _CROPS), None)
        # One encounter = one individual on one day, when the table has dates.
        encounter = f"{identity}/{taken_on.isoformat()}" if taken_on else f"{identity}/{image_id}"
        photos.append(LabelledPhoto(path, identity, side, photo_crop, encounter, bbox, taken_on))
    if absent:
        raise TrainingDataError(
            f"{table}: {len(absent)} photo(s) listed but not found under {root}, e.g. {absent[0]}. "
            "Give the folder the paths are relative to with --root."
        )
    if crop is not None:
        photos = [p for p in photos if p.crop == crop]
    return photos


def _parse_bbox(text: str | None, table: Path, line: int) -> tuple[float, float, float, float] | None:
    if text is None or not text.strip():
        return None
    try:
        values = json.loads(text)
        x, y, width, height = (float(v) for v in values)
    except (ValueError, TypeError) as exc:
        raise TrainingDataError(
            f"{table}, line {line}: bbox {text!r} is not [x, y, width, height] in pixels ({exc})."
        ) from exc
    if width <= 0 or height <= 0 or x < 0 or y < 0:
        raise TrainingDataError(f"{table}, line {line}: bbox {text!r} needs x, y >= 0 and width, height > 0.")
    return (x, y, width, height)


def _parse_date(text: str | None, table: Path, line: int) -> date | None:
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError as exc:
        raise TrainingDataError(f"{table}, line {line}: date {text!r} is not YYYY-MM-DD.") from exc
