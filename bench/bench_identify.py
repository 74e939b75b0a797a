"""Identification quality: index each shared set as if it were an archive, score against its labels.

Usage: python bench/bench_identify.py [--model MODEL.onnx] [--sets nyala,...] [--all-individuals]
The truth for a photo is its individual, plus its side and body part where the set's labels.csv
gives them (flanks and parts are separate catalogue entries until linked). The default model was
trained on 80% of each set's individuals, so by default only the other 20% are indexed (see
bench/heldout.py); --all-individuals indexes everything (fair only for a model trained elsewhere).
Each set is indexed twice, with keypoint verification and without, side by side.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from benchtable import bench_console, measures_table
from heldout import held_out_by_set

from catalog.errors import FinprintError
from catalog.metrics import clustering_scores
from catalog.modelcard import read_card
from catalog.pipeline import index
from catalog.settings import DEFAULT_MODEL_PATH, Settings
from catalog.store import Store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TRUTH_EXTRA_COLUMNS = ("side", "body_part_from_filename")


def truth_of(dataset: Path) -> dict[str, str]:
    """Relative file -> identity key, from the set's labels.csv."""
    with (dataset / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["file"]: "|".join(
            [row["individual_id"], *(row[c].lower() for c in TRUTH_EXTRA_COLUMNS if c in row)]
        )
        for row in rows
    }


def score_set(
    dataset: Path, model: Path, workdir: Path, keep: set[Path] | None, verify: bool
) -> dict[str, str]:
    truth = truth_of(dataset)
    if keep is not None:
        truth = {relative: key for relative, key in truth.items() if (dataset / relative).resolve() in keep}
    archive = workdir / f"{dataset.name}-{'verified' if verify else 'embedding'}"
    for relative in truth:
        target = archive / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((dataset / relative).resolve(), target)
    settings = Settings(db_path=archive.with_suffix(".duckdb"), model_path=model, verify=verify)
    started = time.perf_counter()
    result = index(settings, [archive])
    if verify and any("verification is off" in warning for warning in result.warnings):
        raise FinprintError(" ".join(result.warnings))
    seconds = time.perf_counter() - started
    with Store.open(settings.db_path, read_only=True) as store:
        rows = store.read_only_sql(
            "SELECT pp.path, s.individual_id FROM photo_paths pp JOIN sightings s USING (photo_id)"
        ).rows
    found = {Path(path).relative_to(archive).as_posix(): individual for path, individual in rows}
    keys = sorted(set(truth) & set(found))
    scores = clustering_scores([truth[k] for k in keys], [found[k] for k in keys])
    return {
        "photos": str(len(keys)),
        "true individuals": str(scores.true_individuals),
        "found individuals": str(scores.found_individuals),
        "pairwise precision": f"{scores.pairwise_precision:.3f}",
        "pairwise recall": f"{scores.pairwise_recall:.3f}",
        "pairwise F1": f"{scores.pairwise_f1:.3f}",
        "B-cubed F1": f"{scores.bcubed_f1:.3f}",
        "found individuals mixing two true ones": str(scores.wrong_merges),
        "sent to review": str(result.review),
        "unreadable": str(len(result.errors)),
        "index seconds": f"{seconds:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--sets", default="nyala,zebra_rapid,lions,fs48_train,att_faces")
    parser.add_argument("--all-individuals", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    args = parser.parse_args()
    console = bench_console()
    names = [n for n in args.sets.split(",") if (SHARED / n / "labels.csv").is_file()]
    if not names:
        console.print(f"No shared data sets under {SHARED}: nothing to measure.")
        return
    card = read_card(args.model)
    held_out = None if args.all_individuals else held_out_by_set(args.work)
    if held_out is not None and not held_out:
        console.print("The shared sets are not all there: the training split cannot be rebuilt.")
        return
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            keep = None if held_out is None else {p.path.resolve() for p in held_out.get(name, [])}
            for verify in (False, True):
                label = f"{name} {'fused' if verify else 'embedding'}"
                try:
                    columns[label] = score_set(SHARED / name, args.model, Path(scratch), keep, verify)
                except FinprintError as exc:
                    console.print(f"{label}: not measured ({exc})", markup=False)
    which = "all individuals" if held_out is None else "individuals held out of training"
    title = (
        f"Identification of {which} at the card's threshold {card.threshold} (model {card.model_version}), "
        "embedding alone and with keypoint verification"
    )
    console.print(measures_table(title, columns))


if __name__ == "__main__":
    main()
