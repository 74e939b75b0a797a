"""Accuracy on fish it never saw: finprint's recipe beside the seed study's, on each shared set.

Usage: python bench/bench_accuracy.py [--epochs 15] [--sets nyala,zebra_rapid,...] [--seed 0]
Each set is split by individual (30% held out, seeded; encounters never straddle the split);
both recipes train on the same individuals and are scored on the same held-out ones.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchtable import bench_console, measures_table
from rich.console import Console

from catalog.errors import FinprintError
from catalog.train.loop import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sets", default="nyala,zebra_rapid,lions,att_faces,fs48_train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = bench_console()
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets.split(","):
            if not (SHARED / name).is_dir():
                console.print(f"{name}: not in {SHARED}, skipped")
                continue
            for recipe in ("seed", "finprint"):
                config = TrainConfig(
                    data_dirs=(SHARED / name,),
                    out_path=Path(scratch) / f"{name}-{recipe}.onnx",
                    recipe=recipe,
                    epochs=args.epochs,
                    validation_fraction=0.3,
                    seed=args.seed,
                )
                try:
                    result = train(config, quiet)
                except FinprintError as exc:
                    console.print(f"{name} {recipe}: not measured ({exc})", markup=False)
                    continue
                metrics = result.validation
                if metrics is None:
                    continue
                columns[f"{name} {recipe}"] = {
                    "held-out identities": str(metrics.n_individuals),
                    "ROC AUC": f"{metrics.roc_auc:.3f}",
                    "best balanced pair accuracy": f"{metrics.best_balanced_accuracy:.3f}",
                    "rank-1": f"{metrics.rank1:.3f}",
                    "rank-5": f"{metrics.rank5:.3f}",
                    "mAP": f"{metrics.mean_average_precision:.3f}",
                    "train seconds": f"{result.seconds:.0f}",
                }
                console.print(
                    f"{name} {recipe}: rank-1 {metrics.rank1:.3f}, mAP {metrics.mean_average_precision:.3f}"
                )
    if columns:
        console.print(measures_table(f"Held-out individuals, {args.epochs} epochs each", columns))


if __name__ == "__main__":
    main()
