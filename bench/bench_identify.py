"""Identification quality: index each shared set as if it were an archive, score against its labels.

Usage: python bench/bench_identify.py [--model MODEL.onnx] [--sets nyala,...,trap] [--all-individuals]
                                     [--detectors sift,xfeat] [--decisions FILE.json]
                                     [--rules guarded,previous]
Recall is judged against what the catalogue should join: the individual's flank and body part where
the set's labels.csv gives them (separate catalogue entries until linked). Precision and wrong
merges are judged by animal: one lion's ear and face crops found together are not a wrong merge.
Both are given for the automatic decisions alone (a photo sent to review stays apart until someone
confirms it) and with every review accepted as proposed. The default model was
trained on 80% of each set's individuals, so by default only the other 20% are indexed (see
bench/heldout.py); --all-individuals indexes everything (fair only for a model trained elsewhere).
Each set is indexed on the embedding alone and verified with each keypoint detector, side by side.
`trap` is drawn fish on one measuring board with a ruler and a colour card, stamped, some photographed
in pairs and cut twice (bench/trust.py), all indexed (no model trained on them). `--rules
guarded,previous` verifies with today's rule beside the rule before keypoints were held to the
animal, in one run.
`--decisions FILE.json` also writes every photo's decision (individual, status, distance) per set and
method: two code versions that must decide alike are compared by diffing their files.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchtable import bench_console, measures_table
from heldout import SHARED, held_out_by_set
from rich.console import Console
from trust import RULES, rule, trap_dataset

from catalog.errors import FinprintError
from catalog.identify import partition_key
from catalog.modelcard import ModelCard, read_card
from catalog.night import index
from catalog.offline.metrics import ClusteringScores, clustering_scores
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.store import Store
from catalog.vocabulary import Sides
from exporters.selection import ExportFilter, photo_rows

TRUTH_EXTRA_COLUMNS = ("side", "body_part_from_filename")
# Photographs filed under two animals' names in a shared set, found by looking at the wrong merges
# this bench lists; precision is shown as labelled and with these files given their twin's animal.
LABEL_ERRORS = Path(__file__).with_name("label_errors.csv")


def label_errors(dataset: Path) -> dict[str, str]:
    """Relative file -> the file in the same set that is the same photograph."""
    with LABEL_ERRORS.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {row["file"]: row["same_photograph_as"] for row in rows if row["set"] == dataset.name}


def truth_of(dataset: Path) -> dict[str, tuple[str, str]]:
    """Relative file -> (animal, what the catalogue should join: animal, flank and body part)."""
    with (dataset / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["file"]: (
            row["individual_id"],
            "|".join([row["individual_id"], *(row[c].lower() for c in TRUTH_EXTRA_COLUMNS if c in row)]),
        )
        for row in rows
    }


@dataclass
class Mixed:
    """A found individual holding photos of more than one animal, for a reader to check."""

    label: str
    members: dict[str, list[str]]  # animal -> its files, each with the sighting's status


def precision(scores: ClusteringScores) -> str:
    return f"{scores.pairwise_precision:.3f}" if scores.found_pairs else "- (no pairs)"


def score_set(
    dataset: Path,
    model: Path,
    workdir: Path,
    keep: set[Path] | None,
    *,
    detector: str | None,
    label: str,
    mixed: list[Mixed],
    decisions: dict[str, dict[str, list[object]]] | None = None,
) -> dict[str, str]:
    """Index the set (verified with `detector`, or on the embedding alone) and score its catalogue
    as the column `label`; with `decisions`, every photo's decision is added to it under the set
    and method."""
    truth = truth_of(dataset)
    if keep is not None:
        truth = {relative: keys for relative, keys in truth.items() if (dataset / relative).resolve() in keep}
    archive = workdir / f"{dataset.name}-{label.replace(' ', '-').replace(',', '')}"
    for relative in truth:
        target = archive / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((dataset / relative).resolve(), target)
    settings = Settings(
        db_path=archive.with_suffix(".duckdb"),
        model_path=model,
        verify=detector is not None,
        detector=detector or "sift",
    )
    started = time.perf_counter()
    result = index(settings, [archive])
    if detector and any("verification is off" in warning for warning in result.warnings):
        raise FinprintError(" ".join(result.warnings))
    seconds = time.perf_counter() - started
    run = f"{dataset.name} {label}"
    if decisions is not None:
        decisions[run] = photo_decisions(settings.db_path, archive)
    measures = catalogue_scores(settings.db_path, archive, truth, label_errors(dataset), run=run, mixed=mixed)
    return {
        **measures,
        "sent to review": str(result.review),
        "unreadable": str(len(result.errors)),
        "index seconds": f"{seconds:.1f}",
    }


def photo_decisions(db_path: Path, archive: Path) -> dict[str, list[object]]:
    """Relative file -> [individual, status, distance] of every catalogued photo of `archive`."""
    with Store.open(db_path, read_only=True) as store:
        photos = photo_rows(store, ExportFilter())
    column = {name: photos.columns.index(name) for name in ("path", "individual_id", "status", "distance")}
    return {
        Path(row[column["path"]]).relative_to(archive).as_posix(): [
            row[column["individual_id"]],
            row[column["status"]],
            row[column["distance"]],
        ]
        for row in photos.rows
    }


def catalogued_files(store: Store, root: Path) -> list[tuple[str, str, str, str]]:
    """(file relative to `root`, photo id, individual, status) of every catalogued photo."""
    photos = photo_rows(store, ExportFilter())
    column = {n: photos.columns.index(n) for n in ("path", "photo_id", "individual_id", "status")}
    return [
        (
            Path(row[column["path"]]).relative_to(root).as_posix(),
            row[column["photo_id"]],
            row[column["individual_id"]],
            row[column["status"]],
        )
        for row in photos.rows
        if row[column["individual_id"]] is not None
    ]


def majority_keys(rows: list[tuple[str, str, str, str]], truth: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Each individual's join key (animal, flank and crop): the one most of its photos carry."""
    keys: dict[str, list[str]] = {}
    for relative, _, individual, _ in rows:
        if relative in truth:
            keys.setdefault(individual, []).append(truth[relative][1])
    return {individual: Counter(found).most_common(1)[0][0] for individual, found in keys.items()}


@dataclass
class LookalikeTally:
    """What `finprint lookalikes` shows a person after each night: for each entry the night
    created whose animal (the majority of its photos, by join key: flank and crop) already had
    an entry, whether an entry of that animal is its first look-alike, or among the first `top`,
    beside how often a look-alike drawn at random from its partition would be."""

    archive: Path
    truth: dict[str, tuple[str, str]]
    card: ModelCard
    top: int = 3
    asked: int = 0
    first: int = 0
    among: int = 0
    chance: float = 0.0

    def after_night(self, db_path: Path) -> None:
        from catalog.lookalikes import lookalikes

        with Store.open(db_path, read_only=True) as store:
            tonight = set(store.individuals_of_last_night())
            animal = majority_keys(catalogued_files(store, self.archive), self.truth)
            earlier = {animal[i] for i in animal if i not in tonight}
            returning = sorted(i for i in tonight if animal.get(i) in earlier)
            found = lookalikes(store, self.card, returning, self.top) if returning else []
            partition = {
                photo.individual_id: partition_key(photo.side, photo.crop, self.card.sides == Sides.SPLIT)
                for photo in store.catalogued_photos(self.card.model_version)
            }
        entries = Counter(animal.values())
        in_partition = Counter(partition[individual] for individual in animal)
        hits = [f for f in found if animal.get(f.candidate_id) == animal[f.individual_id]]
        self.asked += len(returning)
        self.first += len({f.individual_id for f in hits if f.rank == 1})
        self.among += len({f.individual_id for f in hits})
        self.chance += sum(
            (entries[animal[i]] - 1) / max(in_partition[partition[i]] - 1, 1) for i in returning
        )

    def rows(self) -> dict[str, str]:
        def share(count: float) -> str:
            return f"{count / self.asked:.3f}" if self.asked else "-"

        return {
            "new entries of animals already catalogued, all nights": str(self.asked),
            "  an entry of the animal is the first look-alike": share(self.first),
            "  the same for a look-alike drawn at random": share(self.chance),
            f"  one is among the first {self.top} look-alikes": share(self.among),
        }


def catalogue_scores(
    db_path: Path,
    archive: Path,
    truth: dict[str, tuple[str, str]],
    twins: dict[str, str],
    *,
    run: str,
    mixed: list[Mixed],
) -> dict[str, str]:
    """Score a catalogue of `archive` against `truth` (relative file -> animal, join key): pairs
    and B-cubed, automatic decisions and every review accepted apart; found individuals that mix
    animals are appended to `mixed`, labelled with `run`."""
    with Store.open(db_path, read_only=True) as store:
        # A photo without a sighting has no decision to score: catalogued_files leaves it out.
        found = {
            relative: (individual, status)
            for relative, _, individual, status in catalogued_files(store, archive)
        }
    keys = sorted(set(truth) & set(found))
    animals = [truth[k][0] for k in keys]
    joins = [truth[k][1] for k in keys]
    # Every review accepted as proposed, and only the automatic decisions (a photo sent to review
    # stays on its own until someone confirms it): a review is not a silent merge.
    proposed = [found[k][0] for k in keys]
    automatic = [f"review:{k}" if found[k][1] == "review" else found[k][0] for k in keys]
    scores = clustering_scores(joins, proposed, animals=animals)
    decided = clustering_scores(joins, automatic, animals=animals)
    relabelled = [truth[twins[k]][0] if k in twins and twins[k] in truth else truth[k][0] for k in keys]
    corrected = clustering_scores(joins, automatic, animals=relabelled)
    by_found: dict[str, dict[str, list[str]]] = {}
    for key, individual in zip(keys, proposed, strict=True):
        by_found.setdefault(individual, {}).setdefault(truth[key][0], []).append(f"{key} ({found[key][1]})")
    mixed.extend(Mixed(f"{run}: {individual}", m) for individual, m in by_found.items() if len(m) > 1)
    return {
        "photos": str(len(keys)),
        "true individuals": str(scores.true_individuals),
        "found individuals": str(scores.found_individuals),
        "pairs joined automatically": str(decided.found_pairs),
        "pairwise precision, automatic decisions": precision(decided),
        "  the same, known label errors corrected": precision(corrected),
        "pairwise recall, automatic decisions": f"{decided.pairwise_recall:.3f}",
        "B-cubed F1, automatic decisions": f"{decided.bcubed_f1:.3f}",
        "pairwise precision, reviews accepted": precision(scores),
        "pairwise recall, reviews accepted": f"{scores.pairwise_recall:.3f}",
        "pairwise F1, reviews accepted": f"{scores.pairwise_f1:.3f}",
        "B-cubed F1, reviews accepted": f"{scores.bcubed_f1:.3f}",
        "wrong merges, automatic decisions": str(decided.wrong_merges),
        "wrong merges, reviews accepted": str(scores.wrong_merges),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--sets", default="nyala,zebra_rapid,lions,fs48_train,att_faces,trap")
    parser.add_argument("--all-individuals", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    parser.add_argument("--detectors", default="sift,xfeat", help="verified runs beside the embedding's")
    parser.add_argument("--decisions", type=Path, help="also write every photo's decision to this JSON file")
    parser.add_argument(
        "--rules", default="guarded", help=f"verification rules side by side: {','.join(RULES)}"
    )
    args = parser.parse_args()
    console = bench_console()
    names = [n for n in args.sets.split(",") if n == "trap" or (SHARED / n / "labels.csv").is_file()]
    if not names:
        console.print(f"No shared data sets under {SHARED}: nothing to measure.")
        return
    card = read_card(args.model)
    held_out = None if args.all_individuals else held_out_by_set(args.work)
    if held_out is not None and not held_out:
        console.print("The shared sets are not all there: the training split cannot be rebuilt.")
        return
    tables: dict[str, dict[str, dict[str, str]]] = {}
    mixed: list[Mixed] = []
    decisions: dict[str, dict[str, list[object]]] | None = {} if args.decisions else None
    rules = [r for r in args.rules.split(",") if r in RULES]
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            dataset = trap_dataset(Path(scratch) / "trap-set") if name == "trap" else SHARED / name
            keep = None
            if held_out is not None and name != "trap":
                keep = {p.path.resolve() for p in held_out.get(name, [])}
            methods = [(None, "guarded")] + [(d, r) for d in args.detectors.split(",") for r in rules]
            for detector, rule_name in methods:
                label = (f"fused {detector}" if detector else "embedding") + (
                    "" if rule_name == "guarded" else f", {rule_name} rule"
                )
                try:
                    with rule(rule_name):
                        tables.setdefault(name, {})[label] = score_set(
                            dataset, args.model, Path(scratch), keep,
                            detector=detector, label=label, mixed=mixed, decisions=decisions,
                        )  # fmt: skip
                except FinprintError as exc:
                    console.print(f"{name} {label}: not measured ({exc})", markup=False)
    which = "all individuals" if held_out is None else "individuals held out of training"
    console.print(
        f"Identification of {which} at the card's threshold {card.threshold} (model {card.model_version}), "
        "embedding alone and with keypoint verification",
        markup=False,
    )
    print_results(console, tables, mixed)
    if args.decisions and decisions is not None:
        args.decisions.write_text(json.dumps(decisions, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        console.print(f"Every photo's decision: {args.decisions}", markup=False)


def print_results(
    console: Console, tables: dict[str, dict[str, dict[str, str]]], mixed: list[Mixed], files_shown: int = 0
) -> None:
    """Each set's table, then every found individual that mixes animals, with its files (the first
    `files_shown` of each animal's, when not 0), so that each can be checked by eye."""
    for name, columns in tables.items():
        console.print(measures_table(name, columns))
    for found in mixed:
        console.print(f"{found.label} holds more than one animal:", markup=False)
        for animal, files in found.members.items():
            shown = files[:files_shown] if files_shown else files
            more = " ..." if len(shown) < len(files) else ""
            console.print(f"  {animal}: {', '.join(shown)}{more}", markup=False)


if __name__ == "__main__":
    main()
