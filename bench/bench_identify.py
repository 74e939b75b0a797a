"""Identification quality: index each shared set as if it were an archive, score against its labels.

Usage: python bench/bench_identify.py [--model MODEL.onnx] [--sets nyala,zebra_rapid,...]
The truth for a photo is its individual, plus its side and body part where the set's labels.csv
gives them (flanks and parts are separate catalogue entries until linked).
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from benchtable import bench_console, measures_table

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


def score_set(dataset: Path, model: Path, workdir: Path) -> dict[str, str]:
    truth = truth_of(dataset)
    archive = workdir / dataset.name
    for relative in truth:
        target = archive / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((dataset / relative).resolve(), target)
    settings = Settings(db_path=workdir / f"{dataset.name}.duckdb", model_path=model)
    started = time.perf_counter()
    result = index(settings, [archive])
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
    args = parser.parse_args()
    console = bench_console()
    names = [n for n in args.sets.split(",") if (SHARED / n / "labels.csv").is_file()]
    if not names:
        console.print(f"No shared data sets under {SHARED}: nothing to measure.")
        return
    card = read_card(args.model)
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            try:
                columns[name] = score_set(SHARED / name, args.model, Path(scratch))
            except FinprintError as exc:
                console.print(f"{name}: not measured ({exc})", markup=False)
    title = f"Identification at the card's threshold {card.threshold} (model {card.model_version})"
    console.print(measures_table(title, columns))


if __name__ == "__main__":
    main()
