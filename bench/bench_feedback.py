"""The catalogue teaches the model: index night by night, let an oracle play the biologist, retrain
from the catalogue, reindex, and go on; beside the same nights and oracle without retraining.

Usage: python bench/bench_feedback.py [--sets drawn,nyala,zebra_rapid,fs48_train] [--rounds 3]
                                      [--spot-checks 5] [--epochs 6] [--model MODEL.onnx]
                                      [--all-individuals] [--no-verify] [--oracle-merges lookalikes]

The archives are bench-nights' (individuals the default model held out of training; drawn fish it
never saw), their nights cut into `--rounds` consecutive rounds. After each night the oracle
settles the review queue from the truth (confirm or reject each proposal) and spot-checks
`--spot-checks` of the night's automatic decisions: a right match is confirmed, a wrong one
rejected; a photo filed as a new fish is merged into the fish's existing entry if it has one
among the new entry's first three `finprint lookalikes` (what a person can find; `--oracle-merges
truth`: any existing entry, as earlier runs of this bench did), or otherwise confirmed as new.
After each round but the last, the feedback arm runs `train --from-catalogue` and, when the new
model is better on the catalogue individuals it held out, reindexes with it. The control arm
indexes the same nights with the same oracle and never retrains. "Recognised"
counts, before the oracle looks, the round's photos of animals already catalogued that were
filed with an earlier photo of the same animal: what the round's model decided. The other scores
are of the whole catalogue after each round (the oracle's corrections included, in both arms).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from bench_identify import Mixed, catalogue_scores, catalogued_files, label_errors, majority_keys
from bench_nights import SHARED_NIGHTS, drawn_archive, labels_of, shared_archive
from benchtable import bench_console, measures_table
from heldout import SHARED, held_out_by_set

from catalog import decisions
from catalog.errors import FinprintError
from catalog.lookalikes import lookalikes
from catalog.modelcard import ModelCard, read_card
from catalog.night import index, reindex
from catalog.offline.labels import LabelledPhoto
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.store import Store
from catalog.train.from_catalogue import CatalogueTrainConfig, train_from_catalogue

ORACLE = "oracle (bench-feedback)"
# A spot-checked new fish whose existing entry a person would not have found among its look-alikes.
_MISSED = "spot check: new fish, its entry not among the look-alikes"


@dataclass
class Archive:
    folders: list[Path]
    root: Path
    truth: dict[str, tuple[str, str]]  # relative file -> (animal, what the catalogue should join)
    twins: dict[str, str]


def recognition(catalogued: list[tuple[str, str, str, str]], archive: Archive, night: Path) -> Counter[str]:
    """Before anyone looks: how many of the night's photos of animals already catalogued were
    filed with an earlier photo of the same animal, and how many with earlier photos of others.
    What the model (and the night's grouping) decided, undiluted by earlier rounds."""
    rows = [r for r in catalogued if r[0] in archive.truth]
    tonight = [r for r in rows if r[0].startswith(night.name + "/")]
    earlier_keys: dict[str, set[str]] = {}
    for relative, _, individual, _ in rows:
        if not relative.startswith(night.name + "/"):
            earlier_keys.setdefault(individual, set()).add(archive.truth[relative][1])
    known = set().union(*earlier_keys.values()) if earlier_keys else set()
    counts: Counter[str] = Counter()
    for relative, _, individual, status in tonight:
        key = archive.truth[relative][1]
        counts["returning"] += key in known
        if status != "review" and individual in earlier_keys:
            counts["recognised" if key in earlier_keys[individual] else "filed with another animal"] += 1
    return counts


def play_biologist(
    store: Store,
    rows: list[tuple[str, str, str, str]],
    archive: Archive,
    night: Path,
    *,
    spot_checks: int,
    seed: int,
    card: ModelCard | None,
) -> Counter[str]:
    """Settle the review queue and spot-check the night's automatic decisions (`rows`: the
    catalogue as the night left it) from the truth; with `card` (the catalogue's model), a new
    fish is merged only into an entry among its first three look-alikes."""
    done: Counter[str] = Counter()
    key = {relative: archive.truth[relative][1] for relative, *_ in rows if relative in archive.truth}
    identity = majority_keys(rows, archive.truth)
    for relative, photo_id, individual, status in rows:
        if status == "review" and relative in key:
            right = key[relative] == identity[individual]
            (decisions.confirm if right else decisions.reject)(store, [photo_id], ORACLE)
            done["review confirmed" if right else "review rejected"] += 1
    tonight = [
        r for r in rows if r[0].startswith(night.name + "/") and r[3] in ("matched", "new") and r[0] in key
    ]
    for relative, photo_id, individual, status in random.Random(seed).sample(
        tonight, min(spot_checks, len(tonight))
    ):
        individual = store.resolve_individual(individual) or individual
        if status == "matched":
            right = key[relative] == identity.get(individual)
            (decisions.confirm if right else decisions.reject)(store, [photo_id], ORACLE)
            done["spot check: match confirmed" if right else "spot check: match rejected"] += 1
            continue
        known = sorted(i for i, k in identity.items() if k == key[relative] and i != individual)
        known = [i for i in known if store.merged_into(i) is None]
        if known and card is not None:
            shown = {f.candidate_id for f in lookalikes(store, card, [individual], top=3)}
            if not shown & set(known):
                done[_MISSED] += 1
                continue
            known = [i for i in known if i in shown]
        if known:
            decisions.merge(store, known[0], individual, ORACLE)
            identity.pop(individual, None)
            done["spot check: new fish merged"] += 1
        else:
            decisions.confirm(store, [photo_id], ORACLE)
            done["spot check: new fish confirmed"] += 1
    return done


def run_arm(
    name: str,
    archive: Archive,
    rounds: list[list[Path]],
    args: argparse.Namespace,
    *,
    feedback: bool,
    work: Path,
) -> dict[str, dict[str, str]]:
    """One arm over every round; a column of scores per round."""
    model = args.model
    settings = Settings(db_path=work / f"{name}.duckdb", model_path=model, verify=not args.no_verify)
    columns: dict[str, dict[str, str]] = {}
    mixed: list[Mixed] = []
    for number, nights in enumerate(rounds):
        queue = 0
        oracle: Counter[str] = Counter()
        seen: Counter[str] = Counter()
        # The round's model: a retraining changes it only between rounds.
        card = read_card(model) if args.oracle_merges == "lookalikes" else None
        for night in nights:
            result = index(replace(settings, model_path=model), [night])
            queue += result.review
            with Store.open(settings.db_path) as store:
                rows = catalogued_files(store, archive.root)
                seen += recognition(rows, archive, night)
                seed = zlib.crc32(night.name.encode())
                oracle += play_biologist(
                    store, rows, archive, night, spot_checks=args.spot_checks, seed=seed, card=card
                )
        scores = catalogue_scores(
            settings.db_path, archive.root, archive.truth, archive.twins, run=name, mixed=mixed
        )
        column = {
            "nights": str(len(nights)),
            "model": model.name,
            "photos": scores["photos"],
            "returning animals' photos recognised": f"{seen['recognised']} of {seen['returning']}",
            "  filed with another animal": str(seen["filed with another animal"]),
            "pairwise precision, automatic": scores["pairwise precision, automatic decisions"],
            "pairwise recall, automatic": scores["pairwise recall, automatic decisions"],
            "B-cubed F1, automatic": scores["B-cubed F1, automatic decisions"],
            "wrong merges": scores["wrong merges, automatic decisions"],
            "review queue, this round": str(queue),
            "oracle decisions": str(sum(oracle.values()) - oracle[_MISSED]),
            "  new fish merged": str(oracle["spot check: new fish merged"]),
            "  new fish left: its entry not among the look-alikes": str(oracle[_MISSED]),
            "training": "-",
            "training minutes": "-",
            "held-out mAP, current -> new": "-",
            "  gain's 95% interval": "-",
        }
        if feedback and number < len(rounds) - 1:
            out = work / f"{name}-round{number + 1}.onnx"
            started = time.perf_counter()
            try:
                trained = train_from_catalogue(
                    CatalogueTrainConfig(settings.db_path, model, out, epochs=args.epochs, seed=number),
                    bench_console(),
                )
            except FinprintError as exc:
                column["training"] = f"none ({str(exc)[:60]}...)"
            else:
                column["training minutes"] = f"{(time.perf_counter() - started) / 60:.1f}"
                current, new = trained.current.mean_average_precision, trained.new.mean_average_precision
                _, low, high = trained.gain
                column["held-out mAP, current -> new"] = f"{current:.3f} -> {new:.3f}"
                column["  gain's 95% interval"] = f"{low:+.3f} to {high:+.3f}"
                column["training"] = "better: reindexed" if trained.better else "not better: kept"
                if trained.better:
                    model = out
                    reindex(replace(settings, model_path=model))
        columns[f"round {number + 1}"] = column
    return columns


def _archive(name: str, held_out: dict[str, list[LabelledPhoto]] | None, scratch: Path) -> Archive:
    """The set's archive: its held-out individuals, or every individual when `held_out` is None."""
    root = scratch / name
    if name == "drawn":
        folders, truth = drawn_archive(root)
        return Archive(folders, root, truth, {})
    dataset = SHARED / name
    if held_out is None:
        keep = {(dataset / row["file"]).resolve() for row in labels_of(dataset)}
    else:
        keep = {p.path.resolve() for p in held_out.get(name, [])}
    folders, truth = shared_archive(dataset, SHARED_NIGHTS[name](dataset, keep), root)
    return Archive(folders, root, truth, label_errors(dataset))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--sets", default="drawn,nyala,zebra_rapid,fs48_train")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spot-checks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="decide on the embedding alone: the default fusion does not weigh the distance, so with "
        "verification a model only changes which candidates are verified",
    )
    parser.add_argument(
        "--all-individuals",
        action="store_true",
        help="every individual of each set, not only those the default model held out: fair only "
        "for a --model that never saw the set (e.g. one trained without it)",
    )
    parser.add_argument(
        "--oracle-merges",
        choices=("lookalikes", "truth"),
        default="lookalikes",
        help="which existing entry a spot-checked new fish may be merged into: one among its first "
        "three look-alikes (what a person finds), or any (the truth)",
    )
    args = parser.parse_args()
    console = bench_console()
    held_out = None if args.all_individuals else held_out_by_set(args.work)
    available = args.all_individuals or bool(held_out)
    names = [n for n in args.sets.split(",") if n == "drawn" or (n in SHARED_NIGHTS and available)]
    console.print(
        f"Model {args.model.name}, {'every individual' if args.all_individuals else 'held-out individuals'}, "
        f"{args.rounds} rounds, {args.spot_checks} spot checks a night, {args.epochs} epochs a retraining, "
        f"oracle merges from {args.oracle_merges}, "
        f"{'embedding alone' if args.no_verify else 'with keypoint verification'}",
        markup=False,
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            archive = _archive(name, held_out, Path(scratch))
            size = -(-len(archive.folders) // args.rounds)
            rounds = [archive.folders[i : i + size] for i in range(0, len(archive.folders), size)]
            for arm, feedback in (("feedback", True), ("control", False)):
                columns = run_arm(
                    f"{name}-{arm}", archive, rounds, args, feedback=feedback, work=Path(scratch)
                )
                console.print(measures_table(f"{name}, {arm}", columns))


if __name__ == "__main__":
    main()
