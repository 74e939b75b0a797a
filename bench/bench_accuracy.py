"""Accuracy on fish it never saw: finprint's recipe beside the seed study's, on each shared set.

Usage: python bench/bench_accuracy.py [--epochs 15] [--sets nyala,zebra_rapid,...] [--seed 0]
Sets with fewer than 100 individuals are scored by k-fold by individual (--folds, default 5),
larger ones on one seeded 30% split; both recipes always see the same folds. Averages per set.
With OpenCV, finprint's models are also scored with keypoint verification of each held-out
photo's 20 nearest (keypoints alone, and fused with the distance, the fusion cross-fitted on
halves of the held-out fish), with pair precision at the decision threshold.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from benchtable import bench_console, measures_table
from rich.console import Console

from catalog import verify
from catalog.embed import Embedder
from catalog.errors import FinprintError
from catalog.offline.evaluate import embed_labelled
from catalog.offline.labels import read_labelled, split_by_individual, split_photos
from catalog.offline.shortlist import cross_fitted, verify_shortlists
from catalog.train.loop import TrainConfig, train

SHORTLIST_K = 20
VERIFICATION_MEASURES = (
    "rank-1 keypoints",
    "rank-1 fused",
    "mAP fused",
    "precision embedding",
    "precision fused",
)


def verification_scores(config: TrainConfig) -> dict[str, float]:
    """Keypoints and fusion on the fold's held-out fish, the fusion cross-fitted by halves of them."""
    photos = read_labelled(config.data_dirs[0])
    if config.folds > 1:
        _, held_out = split_by_individual(
            photos, config.validation_fraction, config.seed, config.fold, config.folds
        )
    else:
        _, held_out = split_photos(photos, "disjoint", config.validation_fraction, config.seed, None)
    embedder = Embedder(config.out_path)
    card = embedder.card
    vectors, kept, _, features, _ = embed_labelled(embedder, held_out, 64, verify.SIFT)
    pairs = verify_shortlists(vectors, kept, features, card.sides, SHORTLIST_K)
    halves = cross_fitted(pairs, card.threshold, card.model_version, verify.DETECTOR)

    def mean(method: str, attribute: str) -> float:
        values = [v for half in halves if (v := getattr(half[method], attribute)) is not None]
        return float(np.mean(values)) if values else float("nan")

    return {
        "rank-1 keypoints": mean("verification", "rank1"),
        "rank-1 fused": mean("fused", "rank1"),
        "mAP fused": mean("fused", "mean_average_precision"),
        "precision embedding": mean("embedding", "precision_at_threshold"),
        "precision fused": mean("fused", "precision_at_threshold"),
    }


SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _cell(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


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
                    checked = (
                        verification_scores(config)
                        if recipe == "finprint" and verify.available()
                        else dict.fromkeys(VERIFICATION_MEASURES, float("nan"))
                    )
                    scores.append(
                        {
                            "ROC AUC": metrics.roc_auc,
                            "best balanced pair accuracy": metrics.best_balanced_accuracy,
                            "rank-1": metrics.rank1,
                            "rank-5": metrics.rank5,
                            "mAP": metrics.mean_average_precision,
                            **checked,
                            "train seconds": result.seconds,
                        }
                    )
                    console.print(
                        f"{name} {recipe} fold {fold}: rank-1 {metrics.rank1:.3f}, "
                        f"mAP {metrics.mean_average_precision:.3f}, "
                        f"fused rank-1 {_cell(checked['rank-1 fused'])}"
                    )
                if scores:
                    columns[f"{name} {recipe}"] = {
                        "folds": str(len(scores)),
                        **{
                            key: _cell(float(np.mean([s[key] for s in scores])))
                            for key in scores[0]
                            if key != "train seconds"
                        },
                        "train seconds (all folds)": f"{sum(s['train seconds'] for s in scores):.0f}",
                    }
    if columns:
        console.print(measures_table(f"Held-out individuals, {args.epochs} epochs each", columns))


if __name__ == "__main__":
    main()
