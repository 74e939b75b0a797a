"""Accuracy on fish it never saw: finprint's recipe beside the seed study's, on each shared set.

Usage: python bench/bench_accuracy.py [--epochs 15] [--sets nyala,zebra_rapid,...] [--seed 0]
Sets with fewer than 100 individuals are scored by k-fold by individual (--folds, default 5),
larger ones on one seeded 30% split; both recipes always see the same folds. Averages per set.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
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
    parser.add_argument("--folds", type=int, default=5, help="k for sets with fewer than 100 individuals")
    args = parser.parse_args()
    console = bench_console()
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets.split(","):
            if not (SHARED / name).is_dir():
                console.print(f"{name}: not in {SHARED}, skipped")
                continue
            individuals = sum(1 for entry in (SHARED / name).iterdir() if entry.is_dir())
            # Fewer than 100 individuals: k-fold by individual, so every fish is tested once.
            folds = args.folds if individuals < 100 else 0
            for recipe in ("seed", "finprint"):
                scores: list[dict[str, float]] = []
                for fold in range(max(folds, 1)):
                    config = TrainConfig(
                        data_dirs=(SHARED / name,),
                        out_path=Path(scratch) / f"{name}-{recipe}-{fold}.onnx",
                        recipe=recipe,
                        epochs=args.epochs,
                        validation_fraction=0.3,
                        seed=args.seed,
                        folds=folds,
                        fold=fold,
                    )
                    try:
                        result = train(config, quiet)
                    except FinprintError as exc:
                        console.print(f"{name} {recipe} fold {fold}: not measured ({exc})", markup=False)
                        continue
                    if result.validation is None:
                        continue
                    metrics = result.validation
                    scores.append(
                        {
                            "ROC AUC": metrics.roc_auc,
                            "best balanced pair accuracy": metrics.best_balanced_accuracy,
                            "rank-1": metrics.rank1,
                            "rank-5": metrics.rank5,
                            "mAP": metrics.mean_average_precision,
                            "train seconds": result.seconds,
                        }
                    )
                    console.print(
                        f"{name} {recipe} fold {fold}: rank-1 {metrics.rank1:.3f}, "
                        f"mAP {metrics.mean_average_precision:.3f}"
                    )
                if scores:
                    columns[f"{name} {recipe}"] = {
                        "folds": str(len(scores)),
                        **{
                            key: f"{np.mean([s[key] for s in scores]):.3f}"
                            for key in scores[0]
                            if key != "train seconds"
                        },
                        "train seconds (all folds)": f"{sum(s['train seconds'] for s in scores):.0f}",
                    }
    if columns:
        console.print(measures_table(f"Held-out individuals, {args.epochs} epochs each", columns))


if __name__ == "__main__":
    main()
