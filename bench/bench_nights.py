"""Night after night: each set's held-out animals as an anonymised survey archive, one folder a
night, indexed into one catalogue the way a field station runs finprint, then scored by animal.

Usage: python bench/bench_nights.py [--model MODEL.onnx] [--sets fs48_train,nyala,zebra_rapid,drawn,trap]
                                    [--decide photo,encounter] [--no-verify] [--rules guarded,previous]

Nights: fs48_train by video sequence (every fish in the tank that sequence, all cameras); nyala by
sighting (a photo-number prefix: its left and right photo), zebra_rapid by runs of consecutive
frames, each sighting given to one of the nights at random (seeded), so that an animal comes back
on later nights; drawn fish by survey (`finprint demo`'s generator, fish no model trained on);
trap: the same drawn fish on one measuring board with a ruler and a colour card, a logo and date
stamped on every photo, a quarter of each survey's fish also photographed in pairs and each pair
photo cut twice (`finprint synthesize --kind archive --traps`). `--rules guarded,previous` runs
today's verification beside the rule before keypoints were held to the animal, in one run.
File names say nothing about the animal (a hash; the flank is kept where the set has one, as a
field photographer's file names would say it); the truth stays outside the archive. Only the
individuals the default model held out of training count (bench/heldout.py). Each way of deciding
(`--decide`) indexes its own copy of every archive, side by side in one run.
The last rows ask what `finprint lookalikes` shows a person after each night: for each entry the
night created whose animal already had one, whether an entry of the animal is its first
look-alike, or among the first three, beside chance.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from bench_identify import LookalikeTally, Mixed, catalogue_scores, label_errors, print_results
from benchtable import bench_console
from heldout import SHARED, held_out_by_set
from trust import RULES, rule, trap_archive

from catalog.errors import FinprintError
from catalog.modelcard import read_card
from catalog.night import index
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.synthetic import GROUND_TRUTH_FILE, generate_archive, read_ground_truth

FIRST_NIGHT = date(2024, 6, 1)
# Sightings of nyala and zebra per night when they are dealt out at random.
SIGHTINGS_PER_NIGHT = 4
# Frames of one zebra this close together are one sighting (a burst of one walk past the camera).
ZEBRA_FRAME_GAP = 10


class Night:
    """One survey folder: its photos as (source file, animal, what the catalogue should join, flank)."""

    def __init__(self) -> None:
        self.photos: list[tuple[Path, str, str, str]] = []


def labels_of(dataset: Path) -> list[dict[str, str]]:
    with (dataset / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _deal(sightings: dict[str, list[dict[str, str]]], seed: int) -> list[list[dict[str, str]]]:
    """Sightings dealt out to nights at random, SIGHTINGS_PER_NIGHT a night."""
    keys = sorted(sightings)
    random.Random(seed).shuffle(keys)
    return [
        [row for key in keys[i : i + SIGHTINGS_PER_NIGHT] for row in sightings[key]]
        for i in range(0, len(keys), SIGHTINGS_PER_NIGHT)
    ]


def fs48_nights(dataset: Path, keep: set[Path]) -> list[list[dict[str, str]]]:
    by_sequence: dict[str, list[dict[str, str]]] = {}
    for row in labels_of(dataset):
        if (dataset / row["file"]).resolve() in keep:
            by_sequence.setdefault(row["sequence"], []).append(row)
    return [by_sequence[s] for s in sorted(by_sequence)]


def nyala_nights(dataset: Path, keep: set[Path]) -> list[list[dict[str, str]]]:
    sightings: dict[str, list[dict[str, str]]] = {}
    for row in labels_of(dataset):
        if (dataset / row["file"]).resolve() in keep:
            sightings.setdefault(f"{row['individual_id']}/{row['photo_number_prefix']}", []).append(row)
    return _deal(sightings, seed=1)


def zebra_nights(dataset: Path, keep: set[Path]) -> list[list[dict[str, str]]]:
    by_animal: dict[str, list[dict[str, str]]] = {}
    for row in labels_of(dataset):
        if (dataset / row["file"]).resolve() in keep:
            by_animal.setdefault(row["individual_id"], []).append(row)
    sightings: dict[str, list[dict[str, str]]] = {}
    for animal, rows in by_animal.items():
        rows.sort(key=lambda row: int(row["frame_number"]))
        start = int(rows[0]["frame_number"])
        previous = start
        for row in rows:
            frame = int(row["frame_number"])
            if frame - previous > ZEBRA_FRAME_GAP:
                start = frame
            previous = frame
            sightings.setdefault(f"{animal}/{start}", []).append(row)
    return _deal(sightings, seed=2)


SHARED_NIGHTS: dict[str, Callable[[Path, set[Path]], list[list[dict[str, str]]]]] = {
    "fs48_train": fs48_nights,
    "nyala": nyala_nights,
    "zebra_rapid": zebra_nights,
}


def shared_archive(
    dataset: Path, nights: list[list[dict[str, str]]], archive: Path
) -> tuple[list[Path], dict[str, tuple[str, str]]]:
    """Link a shared set's photos into anonymised night folders; returns the folders in order and
    the truth (relative file -> animal, join key)."""
    folders: list[Path] = []
    truth: dict[str, tuple[str, str]] = {}
    for number, rows in enumerate(nights):
        folder = archive / f"{FIRST_NIGHT + timedelta(days=number)}_station"
        folder.mkdir(parents=True)
        folders.append(folder)
        for row in rows:
            source = (dataset / row["file"]).resolve()
            flank = row.get("side", "").lower()
            digest = hashlib.sha1(row["file"].encode()).hexdigest()[:12]
            name = f"IMG_{digest}{'_' + flank if flank else ''}{source.suffix.lower()}"
            os.symlink(source, folder / name)
            truth[f"{folder.name}/{name}"] = (row["individual_id"], f"{row['individual_id']}|{flank}")
    return folders, truth


def drawn_archive(archive: Path) -> tuple[list[Path], dict[str, tuple[str, str]]]:
    """`finprint demo`'s survey generator with a seed no model trained on: six surveys."""
    generate_archive(archive, n_individuals=24, n_surveys=6, seed=5)
    truth = {
        row.path: (row.fish_id, row.identity_key) for row in read_ground_truth(archive / GROUND_TRUTH_FILE)
    }
    folders = sorted(p for p in archive.iterdir() if p.is_dir())
    return folders, truth


def trapped_archive(archive: Path) -> tuple[list[Path], dict[str, tuple[str, str]]]:
    """The drawn archive's fish with every trap (see trust.trap_archive)."""
    folders = trap_archive(archive)
    truth = {
        row.path: (row.fish_id, row.identity_key) for row in read_ground_truth(archive / GROUND_TRUTH_FILE)
    }
    return folders, truth


DRAWN: dict[str, Callable[[Path], tuple[list[Path], dict[str, tuple[str, str]]]]] = {
    "drawn": drawn_archive,
    "trap": trapped_archive,
}


def run_nights(
    folders: list[Path], settings: Settings, lookalikes: LookalikeTally | None = None
) -> tuple[dict[str, str], float]:
    """Index each night's folder in turn into one catalogue, asking for each night's look-alikes
    after it; the run totals and the seconds (the look-alikes' excluded)."""
    seconds = 0.0
    review = errors = 0
    for folder in folders:
        started = time.perf_counter()
        result = index(settings, [folder])
        seconds += time.perf_counter() - started
        if lookalikes is not None:
            lookalikes.after_night(settings.db_path)
        if settings.verify and any("verification is off" in warning for warning in result.warnings):
            raise FinprintError(" ".join(result.warnings))
        # A later night re-reads the whole catalogue: the last night's report counts only its own.
        review += result.review
        errors += len(result.errors)
    return {"nights": str(len(folders)), "sent to review": str(review), "unreadable": str(errors)}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--sets", default="fs48_train,nyala,zebra_rapid,drawn,trap")
    parser.add_argument("--decide", default="photo,encounter", help="photo, encounter or both")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument(
        "--rules", default="guarded", help=f"verification rules side by side: {','.join(RULES)}"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    args = parser.parse_args()
    console = bench_console()
    card = read_card(args.model)
    held_out = held_out_by_set(args.work)
    names = [n for n in args.sets.split(",") if n in DRAWN or n in SHARED_NIGHTS]
    if not held_out and any(n not in DRAWN for n in names):
        console.print(f"The shared sets are not all under {SHARED}: only drawn fish are measured.")
        names = [n for n in names if n in DRAWN]
    ways = [(w, r) for w in args.decide.split(",") if w for r in args.rules.split(",") if r in RULES]
    tables: dict[str, dict[str, dict[str, str]]] = {}
    mixed: list[Mixed] = []
    base = Settings(model_path=args.model, verify=not args.no_verify)
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            for way, rule_name in ways:
                archive = Path(scratch) / f"{name}-{way}-{rule_name}"
                if name in DRAWN:
                    folders, truth = DRAWN[name](archive)
                    twins: dict[str, str] = {}
                else:
                    dataset = SHARED / name
                    keep = {p.path.resolve() for p in held_out.get(name, [])}
                    folders, truth = shared_archive(dataset, SHARED_NIGHTS[name](dataset, keep), archive)
                    twins = label_errors(dataset)
                settings = replace(
                    base, db_path=archive.with_suffix(".duckdb"), group_encounters=way == "encounter"
                )
                tally = LookalikeTally(archive, truth, card)
                column = f"by {way}" + ("" if rule_name == "guarded" else f", {rule_name} rule")
                try:
                    with rule(rule_name):
                        totals, seconds = run_nights(folders, settings, tally)
                except FinprintError as exc:
                    console.print(f"{name} {column}: not measured ({exc})", markup=False)
                    continue
                run = f"{name} {column}"
                scores = catalogue_scores(settings.db_path, archive, truth, twins, run=run, mixed=mixed)
                tables.setdefault(name, {})[column] = {
                    **totals,
                    **scores,
                    **tally.rows(),
                    "index seconds, all nights": f"{seconds:.1f}",
                }
    console.print(
        f"Night after night, individuals held out of training, model {card.model_version} (threshold "
        f"{card.threshold}), {'embedding alone' if args.no_verify else 'with keypoint verification'}",
        markup=False,
    )
    print_results(console, tables, mixed, files_shown=6)


if __name__ == "__main__":
    main()
