"""Labelled photo sets for training and evaluation: a folder per individual or `<id>_<side>_*` names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import TrainingDataError
from catalog.photos import IMAGE_SUFFIXES, side_from_tokens, walk

_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_SIDES = {"left": "left", "right": "right"}
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

    def class_key(self, sides: str) -> str:
        """The identity a network must learn: flanks are separate unless sides are merged."""
        side = self.side if sides == "split" and self.side else "*"
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
        side = next((_SIDES[t] for t in tokens if t in _SIDES), None) or side_from_tokens(tokens)
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


def split_by_individual(
    photos: list[LabelledPhoto], validation_fraction: float, seed: int
) -> tuple[list[LabelledPhoto], list[LabelledPhoto]]:
    """Train/validation split by individual, never by photo, so validation fish are unseen."""
    import numpy as np

    individuals = sorted({p.individual for p in photos})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(individuals))
    n_validation = max(1, round(len(individuals) * validation_fraction)) if validation_fraction > 0 else 0
    held_out = {individuals[i] for i in order[:n_validation]}
    train = [p for p in photos if p.individual not in held_out]
    validation = [p for p in photos if p.individual in held_out]
    return train, validation
