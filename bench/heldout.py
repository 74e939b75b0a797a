"""The individuals `just train-default` held out for validation: the only fair test of the default model.

The default model was trained on 80% of the individuals of every shared set; scoring it on the
rest needs the very same split, which depends on every source in the same order, so the
synthetic fish are drawn again (deterministically) when they are not on disk.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from catalog.offline.labels import LabelledPhoto, read_sources, source_of, split_photos
from catalog.synthetic import generate_labelled

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# As in the Justfile's train-default recipe, in the same order, with TrainConfig's split defaults.
DEFAULT_MODEL_SETS = ("nyala", "zebra_rapid", "lions", "att_faces", "fs48_train")
SYNTHETIC_FOLDER = "synthetic-fish"
VALIDATION_FRACTION = 0.2
TRAINING_SEED = 0
# As the Justfile's train-default draws them: this many fish from each of seeds 1 and 2.
SYNTHETIC_FISH_PER_SEED = 80


def synthetic_fish(work: Path) -> Path:
    """The synthetic fish of train-default (seeds 1 and 2), drawn again if missing."""
    folder = work / SYNTHETIC_FOLDER
    photos_expected = 2 * SYNTHETIC_FISH_PER_SEED * 2 * 2 * 5  # seeds x fish x flanks x crops x photos
    if not folder.is_dir() or sum(1 for _ in folder.glob("*.jpg")) != photos_expected:
        for seed in (1, 2):
            generate_labelled(folder, SYNTHETIC_FISH_PER_SEED, 5, seed)
    return folder


def held_out_by_set(work: Path) -> dict[str, list[LabelledPhoto]]:
    """Held-out photos of each source (names keep their `<set>/` prefix); empty when a shared set
    is missing, since the split would then not be the training's."""
    if not all((SHARED / name).is_dir() for name in DEFAULT_MODEL_SETS):
        return {}
    photos = read_sources([synthetic_fish(work), *(SHARED / name for name in DEFAULT_MODEL_SETS)])
    _, held_out = split_photos(photos, "disjoint", VALIDATION_FRACTION, TRAINING_SEED, None)
    by_set: dict[str, list[LabelledPhoto]] = {}
    for photo in held_out:
        by_set.setdefault(source_of(photo), []).append(photo)
    return by_set


def held_out_or_say(work: Path, console: Console) -> dict[str, list[LabelledPhoto]]:
    """held_out_by_set, saying so when there is nothing to score."""
    held_out = held_out_by_set(work)
    if not held_out:
        console.print("the shared sets are not all present: nothing to score")
    return held_out


def named_models(entries: list[str]) -> dict[str, Path]:
    """`--model NAME=PATH` arguments as {NAME: PATH}."""
    return {label: Path(path) for label, _, path in (entry.partition("=") for entry in entries)}
