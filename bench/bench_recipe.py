"""Two training recipes side by side, k-fold by individual on every shared set: the recipe yardstick.

Usage: python bench/bench_recipe.py [--recipe NAME:key=value,... (twice or more)] [--folds 5] [--epochs 12]
       [--sets fs48_train,nyala,zebra_rapid,lions,att_faces,drawn] [--work DIR] [--as-a-user] [--table-only]

For each set, its individuals are cut into folds (TrainConfig.folds, the same cut for both
recipes); each recipe trains on the other folds of that set only and is scored, through its
exported ONNX file as a night would run it, on the held-out fold: rank-1 and mAP (matching across
encounters, a photo's own encounter never its match), ROC AUC and TAR at FAR 1%. Then, per set,
each recipe's mean with its 95% interval, the CPU minutes of one training (process time, every
thread) and per 1,000 photos per epoch, and the difference B - A with its interval. rank-1 and
mAP pool the held-out queries of every fold and resample animals; ROC AUC and TAR are per fold,
so their interval is Student's t over the folds. A recipe change is kept only when its mean gain
over all sets is positive and no set is surely worse (an interval wholly below 0).

--as-a-user trains as `finprint train` does on the other folds (a fifth of their animals held out
to set the threshold), so that the held-out fold is never seen, not even for the threshold; a
third table then gives, at each network's own card threshold, the share of the held-out fold's
different-animal pairs it would call the same animal and the share of re-sightings it matches.
This is how `final:final_fit=true` (train again on every animal, keep the threshold) is judged.

Each finished training is appended to WORK/runs.jsonl and skipped when the bench runs again with
the same recipes, folds and epochs: a killed bench goes on where it stopped; --table-only prints
what is there. "drawn" is synthetic fish (catalog.synthetic), drawn once into WORK.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from benchtable import bench_console
from rich.console import Console
from rich.table import Table

from catalog.embed import Embedder
from catalog.offline.evaluate import embed_labelled
from catalog.offline.labels import LabelledPhoto, read_sources, split_by_individual
from catalog.offline.metrics import bootstrap_interval, paired_bootstrap, reid_metrics_by_query
from catalog.synthetic import generate_labelled

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SETS = ("zebra_rapid", "nyala", "att_faces", "drawn", "lions", "fs48_train")
# Fewer individuals than this and five folds leave too few animals per held-out fold to rank.
FIVE_FOLD_MINIMUM = 30
DRAWN_FISH, DRAWN_PHOTOS_PER_VIEW, DRAWN_SEED = 40, 3, 11
# Student's t at 97.5% for 1-9 degrees of freedom (folds - 1).
T_975 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26)
# Today's `finprint train` (the CLI's defaults over TrainConfig's).
BASE = {"backbone": "mobilenetv2", "seed": 0}
# The re-identification "bag of tricks" ingredients finprint has, with the whole trunk learning.
CANDIDATE = "softmax+triplet,pooling=gem,random_erasing=0.5,freeze_blocks=0,trunk_lr_scale=0.15"


@dataclass(frozen=True)
class Recipe:
    """A name and the TrainConfig fields it sets beyond BASE."""

    name: str
    fields: dict[str, Any]

    @classmethod
    def parse(cls, text: str) -> Recipe:
        """`NAME:key=value,key=value` (a bare value first is the loss); values typed as the field."""
        name, _, rest = text.partition(":")
        from catalog.train.loop import TrainConfig

        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        fields: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, has_value, value = item.partition("=")
            if not has_value:
                key, value = "loss", key
            if key not in defaults:
                raise SystemExit(f"{text}: TrainConfig has no field {key!r}")
            fields[key] = _typed(value, defaults[key])
        return cls(name, fields)


def _typed(value: str, default: Any) -> Any:
    """`value` as the type of the field's default; a field whose default is None (input_height,
    say) takes a number where the text is one."""
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes")
    if default is not None:
        return type(default)(value)
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def set_folder(name: str, work: Path) -> Path:
    if name != "drawn":
        return SHARED / name
    folder = work / "drawn-fish"
    if not folder.is_dir():
        generate_labelled(folder, DRAWN_FISH, DRAWN_PHOTOS_PER_VIEW, DRAWN_SEED)
    return folder


def folds_for(photos: list[LabelledPhoto], wanted: int) -> int:
    return wanted if len({p.individual for p in photos}) >= FIVE_FOLD_MINIMUM else min(wanted, 3)


def train_and_score(
    recipe: Recipe, folder: Path, *, folds: int, fold: int, epochs: int, work: Path, as_user: bool = False
) -> dict[str, Any]:
    """One training on the other folds, scored through ONNX on the held-out fold."""
    import resource

    from catalog.train.loop import TrainConfig, train

    mode = "-as-a-user" if as_user else ""
    out = work / "models" / f"{recipe.name}-{folder.name}-{fold}of{folds}{mode}.onnx"
    # As a user: the other folds are all there is, and the training holds a fifth of them out.
    split = {} if as_user else {"folds": folds, "fold": fold}
    config = TrainConfig(
        data_dirs=(folder,), out_path=out, epochs=epochs, checkpoint_dir=work / "checkpoints" / out.stem,
        **split, **{**BASE, **recipe.fields},
    )  # fmt: skip
    photos = read_sources([folder])
    train_photos, held_out = split_by_individual(photos, 0.0, config.seed, fold, folds)
    started_cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    # The photos read above, not read again: as a user, only the other folds'.
    result = train(config, Console(quiet=True), train_photos if as_user else photos)
    ended_cpu = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (ended_cpu.ru_utime + ended_cpu.ru_stime) - (started_cpu.ru_utime + started_cpu.ru_stime)
    embedder = Embedder(out)
    vectors, kept, _, _, _ = embed_labelled(embedder, held_out, 64)
    metrics, queries = reid_metrics_by_query(
        vectors,
        [p.class_key(embedder.card.sides) for p in kept],
        [p.encounter for p in kept],
        threshold=embedder.card.threshold,
    )
    false_match_rate, true_match_rate = metrics.operating_point or (float("nan"), float("nan"))
    return {
        "recipe": recipe.name, "fields": recipe.fields, "set": folder.name, "folds": folds,
        "fold": fold, "epochs": epochs, "as_user": as_user, "model": str(out),
        "train_photos": len(train_photos),
        "threshold": embedder.card.threshold, "false_match_rate": false_match_rate,
        "true_match_rate": true_match_rate,
        "cpu_minutes": cpu_seconds / 60, "wall_minutes": (time.perf_counter() - started) / 60,
        "roc_auc": metrics.roc_auc, "tar_far_1pct": metrics.tar_at_far_1pct,
        "queries": [str(kept[row].path) for row in queries.rows],
        "animals": [kept[row].individual for row in queries.rows],
        "rank1": queries.rank1.astype(float).tolist(),
        "ap": queries.average_precision.astype(float).tolist(),
        "trained_seconds": result.seconds,
    }  # fmt: skip


def key(run: dict[str, Any]) -> tuple[Any, ...]:
    return (
        run["recipe"],
        json.dumps(run["fields"], sort_keys=True),
        run["set"],
        run["folds"],
        run["fold"],
        run["epochs"],
        run.get("as_user", False),
    )


def t_interval(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return float("nan"), float("nan")
    mean, spread = float(np.mean(values)), float(np.std(values, ddof=1)) / np.sqrt(len(values))
    t = T_975[min(len(values) - 2, len(T_975) - 1)]
    return mean - t * spread, mean + t * spread


@dataclass(frozen=True)
class Pooled:
    """One recipe's runs on one set: held-out queries of every fold, and per-fold pair figures."""

    runs: list[dict[str, Any]]

    def per_query(self, measure: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        values = np.concatenate([np.asarray(r[measure], dtype=float) for r in self.runs])
        animals = np.concatenate([np.asarray([f"{r['fold']}/{a}" for a in r["animals"]]) for r in self.runs])
        queries = [q for r in self.runs for q in r["queries"]]
        return values, animals, queries

    def per_fold(self, measure: str) -> list[float]:
        return [float(r[measure]) for r in sorted(self.runs, key=lambda r: r["fold"])]


def cell(mean: float, interval: tuple[float, float], signed: bool = False) -> str:
    sure = ""
    if signed:
        sure = "*" if interval[0] > 0 or interval[1] < 0 else " "
        return f"{mean:+.3f} ({interval[0]:+.2f}, {interval[1]:+.2f}){sure}"
    # Every measure here is a share: Student's t over three folds can reach past 0 or 1.
    low, high = max(0.0, interval[0]), min(1.0, interval[1])
    return f"{mean:.3f} ({low:.2f} to {high:.2f})"


def grouped(runs: list[dict[str, Any]]) -> dict[tuple[str, str], Pooled]:
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        by.setdefault((run["recipe"], run["set"]), []).append(run)
    return {pair: Pooled(items) for pair, items in by.items()}


def recipes_table(pooled_by: dict[tuple[str, str], Pooled], recipes: list[Recipe], epochs: int) -> Table:
    """Each recipe's figures on each set, with intervals and costs."""
    table = Table(title=f"Each recipe, k-fold by individual, {epochs} epochs (95% intervals)")
    columns = ("set", "folds", "recipe", "rank-1", "mAP", "ROC AUC", "TAR at FAR 1%", "CPU min/training",
               "CPU min per 1k photo-epochs")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("set", "recipe") else "right")
    shown = [
        pooled_by[(r.name, name)]
        for name in sets_of(pooled_by)
        for r in recipes
        if (r.name, name) in pooled_by
    ]
    for pooled in shown:
        row = [
            pooled.runs[0]["set"],
            f"{len(pooled.runs)}/{pooled.runs[0]['folds']}",
            pooled.runs[0]["recipe"],
        ]
        for measure in ("rank1", "ap"):
            values, animals, _ = pooled.per_query(measure)
            row.append(cell(float(values.mean()), bootstrap_interval(values, animals)))
        for measure in ("roc_auc", "tar_far_1pct"):
            folds = pooled.per_fold(measure)
            row.append(cell(float(np.mean(folds)), t_interval(folds)))
        cpu = np.asarray(pooled.per_fold("cpu_minutes"))
        photo_epochs = np.asarray([r["train_photos"] * r["epochs"] / 1000 for r in pooled.runs])
        row += [f"{cpu.mean():.1f}", f"{np.mean(cpu / photo_epochs):.2f}"]
        table.add_row(*row)
    return table


def threshold_table(pooled_by: dict[tuple[str, str], Pooled], recipes: list[Recipe]) -> Table:
    """At each network's card threshold, on held-out animals it never saw: how often it would join
    two different animals (per pair), and how many re-sightings it recognises."""
    table = Table(title="At the card's threshold, on the held-out fold (mean over folds; worst fold)")
    for column in ("set", "recipe", "threshold", "false-match rate", "worst fold", "re-sightings matched"):
        table.add_column(column, justify="left" if column in ("set", "recipe") else "right")
    for name in sets_of(pooled_by):
        for recipe in recipes:
            pooled = pooled_by.get((recipe.name, name))
            if pooled is None or "false_match_rate" not in pooled.runs[0]:
                continue
            false_match = pooled.per_fold("false_match_rate")
            table.add_row(
                name, recipe.name, f"{np.mean(pooled.per_fold('threshold')):.3f}",
                f"{np.mean(false_match):.1e}", f"{max(false_match):.1e}",
                f"{np.mean(pooled.per_fold('true_match_rate')):.3f}",
            )  # fmt: skip
    return table


def sets_of(pooled_by: dict[tuple[str, str], Pooled]) -> list[str]:
    return list(dict.fromkeys(name for _, name in pooled_by))


def difference_row(a: Pooled, b: Pooled, gains: dict[str, list[float]]) -> list[str]:
    """B - A on one set, paired by query (rank-1, mAP) or by fold (ROC AUC, TAR); adds to `gains`."""
    row = []
    for measure in ("rank1", "ap"):
        va, animals, qa = a.per_query(measure)
        vb, _, qb = b.per_query(measure)
        if qa != qb:
            row.append("other queries")
            continue
        difference, low, high = paired_bootstrap(vb, va, animals)
        gains[measure].append(difference)
        row.append(cell(difference, (low, high), signed=True))
    for measure in ("roc_auc", "tar_far_1pct"):
        differences = [y - x for x, y in zip(a.per_fold(measure), b.per_fold(measure), strict=True)]
        gains[measure].append(float(np.mean(differences)))
        row.append(cell(float(np.mean(differences)), t_interval(differences), signed=True))
    return row


def difference_table(pooled_by: dict[tuple[str, str], Pooled], first: Recipe, second: Recipe) -> Table:
    """B - A per set where both have every fold, and the mean gain over those sets."""
    table = Table(
        title=f"{second.name} - {first.name}, sets with every fold of both (95% interval; * excludes 0)"
    )
    for column in ("set", "rank-1", "mAP", "ROC AUC", "TAR at FAR 1%"):
        table.add_column(column, justify="left" if column == "set" else "right")
    gains: dict[str, list[float]] = {m: [] for m in ("rank1", "ap", "roc_auc", "tar_far_1pct")}
    for name in sets_of(pooled_by):
        a, b = pooled_by.get((first.name, name)), pooled_by.get((second.name, name))
        if a is None or b is None or not (len(a.runs) == len(b.runs) == a.runs[0]["folds"]):
            continue
        table.add_row(name, *difference_row(a, b, gains))
    if gains["roc_auc"]:
        table.add_row("mean over sets", *(f"{np.mean(g):+.3f}" if g else "-" for g in gains.values()))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipe",
        action="append",
        default=[],
        help="NAME:key=value,... (two or more: each against the first)",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-bench-recipe"))
    parser.add_argument(
        "--as-a-user", action="store_true", help="train as `finprint train` does on the other folds"
    )
    parser.add_argument("--table-only", action="store_true", help="print what WORK holds; train nothing")
    args = parser.parse_args()
    recipes = [Recipe.parse(text) for text in (args.recipe or ["today:", f"candidate:{CANDIDATE}"])]
    console = bench_console()
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    # Two benches sharing WORK may both have trained one fold: the first one written counts.
    runs = list({key(run): run for run in reversed(runs)}.values())[::-1]
    wanted = {r.name: r for r in recipes}
    runs = [
        r
        for r in runs
        if r["recipe"] in wanted
        and r["fields"] == wanted[r["recipe"]].fields
        and r["epochs"] == args.epochs
        and r.get("as_user", False) == args.as_a_user
    ]
    done = {key(r) for r in runs}
    for name in args.sets.split(","):
        if args.table_only or (name != "drawn" and not (SHARED / name).is_dir()):
            continue
        folder = set_folder(name, args.work)
        folds = folds_for(read_sources([folder]), args.folds)
        if folds < args.folds:
            console.print(
                f"{name}: {folds} folds, not {args.folds} (fewer than {FIVE_FOLD_MINIMUM} individuals)"
            )
        for fold in range(folds):
            for recipe in recipes:
                probe = {
                    "recipe": recipe.name,
                    "fields": recipe.fields,
                    "set": folder.name,
                    "folds": folds,
                    "fold": fold,
                    "epochs": args.epochs,
                    "as_user": args.as_a_user,
                }
                if key(probe) in done:
                    continue
                run = train_and_score(
                    recipe, folder, folds=folds, fold=fold, epochs=args.epochs, work=args.work,
                    as_user=args.as_a_user,
                )  # fmt: skip
                with log.open("a") as out:
                    out.write(json.dumps(run) + "\n")
                runs.append(run)
                console.print(
                    f"{recipe.name} {folder.name} fold {fold + 1}/{folds}: "
                    f"rank-1 {np.mean(run['rank1']):.3f}, mAP {np.mean(run['ap']):.3f}, "
                    f"ROC AUC {run['roc_auc']:.3f}, {run['cpu_minutes']:.1f} CPU min"
                )
    pooled_by = grouped(runs)
    console.print(recipes_table(pooled_by, recipes, args.epochs))
    if args.as_a_user:
        console.print(threshold_table(pooled_by, recipes))
    # With more than two recipes, each is set against the first (one training of the first serves all).
    for other in recipes[1:]:
        console.print(difference_table(pooled_by, recipes[0], other))


if __name__ == "__main__":
    main()
