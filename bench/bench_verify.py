"""Keypoint verification beside the embedding, on the individuals the default model never saw.

Usage: python bench/bench_verify.py [--model MODEL.onnx] [--work DIR] [--shortlist-k 20]
                                   [--detectors sift,xfeat]
For each set, each held-out photo's k nearest held-out photos are matched by keypoints; the
fusion is refitted leaving that set out (fitted on the other sets' pairs), so no set is scored
with parameters fitted on itself. Prints rank-1, mAP, shortlist ROC AUC and precision at the
decision threshold for embedding only, keypoints only and fused, and the added time per photo.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from benchtable import bench_console, measures_table
from heldout import held_out_by_set

from catalog import fusion as fusion_module
from catalog import verify
from catalog.detectors import named
from catalog.embed import Embedder
from catalog.modelcard import ModelCard
from catalog.offline.evaluate import embed_labelled
from catalog.offline.shortlist import Shortlists, compare_methods, verify_shortlists
from catalog.settings import DEFAULT_MODEL_PATH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    parser.add_argument("--shortlist-k", type=int, default=fusion_module.DEFAULT_SHORTLIST_K)
    parser.add_argument("--detectors", default="sift,xfeat", help="comma-separated: sift, xfeat")
    args = parser.parse_args()
    console = bench_console()
    if not verify.available():
        console.print("OpenCV is not installed (pip install 'finprint[verify]'): nothing to measure.")
        return
    held_out = held_out_by_set(args.work)
    if not held_out:
        console.print("The shared data sets are not all there: the training split cannot be rebuilt.")
        return
    embedder = Embedder(args.model)
    card = embedder.card
    detectors = [named(kind) for kind in args.detectors.split(",")]
    columns: dict[str, dict[str, str]] = {}
    for detector in detectors:
        measured: dict[str, tuple[Shortlists, float]] = {}
        for name, photos in sorted(held_out.items()):
            vectors, kept, _, features, describe_seconds = embed_labelled(embedder, photos, 64, detector)
            pairs = verify_shortlists(
                vectors, kept, features, card.sides, args.shortlist_k, detector=detector
            )
            measured[name] = (pairs, 1000 * describe_seconds / max(1, len(kept)))
            console.print(f"{name}: {len(kept)} held-out photos verified with {detector.name}", markup=False)
        for name, (_, describe_ms) in measured.items():
            columns[f"{name} {detector.name.split('-')[0]}"] = _column(
                name, measured, card, detector=detector, shortlist_k=args.shortlist_k, describe_ms=describe_ms
            )
    title = (
        f"Keypoint verification on held-out individuals (model {card.model_version}, "
        f"shortlist {args.shortlist_k}, fusion fitted leaving each set out)"
    )
    console.print(measures_table(title, dict(sorted(columns.items()))))


def _column(
    name: str,
    measured: dict[str, tuple[Shortlists, float]],
    card: ModelCard,
    *,
    detector: verify.Detector,
    shortlist_k: int,
    describe_ms: float,
) -> dict[str, str]:
    """One set's scores, its fusion fitted on the other sets' pairs."""
    pairs = measured[name][0]
    others = {other: m[0] for other, m in measured.items() if other != name}
    evidence = fusion_module.LabelledPairs(
        np.concatenate([o.distance for o in others.values()]),
        np.concatenate([o.inliers for o in others.values()]),
        np.concatenate([o.same for o in others.values()]),
        groups=np.concatenate([[other] * len(o.distance) for other, o in others.items()]),
    )
    fitted = fusion_module.fit(
        evidence, card.threshold, card.model_version, detector.name, shortlist_k=shortlist_k
    )
    methods = compare_methods(pairs, card.threshold, fitted)
    column: dict[str, str] = {"photos": str(len(pairs.labels))}
    for measure, attribute in (
        ("rank-1", "rank1"),
        ("mAP", "mean_average_precision"),
        ("shortlist ROC AUC", "shortlist_auc"),
    ):
        for method, scores in methods.items():
            column[f"{measure} {method}"] = f"{getattr(scores, attribute):.3f}"
    for method in ("embedding", "fused"):
        scores = methods[method]
        precision = scores.precision_at_threshold
        column[f"precision at threshold {method}"] = "-" if precision is None else f"{precision:.3f}"
        column[f"pairs accepted {method}"] = str(scores.accepted_pairs)
    column["median inliers same / different"] = (
        f"{np.median(pairs.inliers[pairs.same]):.0f} / {np.median(pairs.inliers[~pairs.same]):.0f}"
    )
    column["describe ms per photo"] = f"{describe_ms:.1f}"
    column[f"match ms per photo (k={shortlist_k})"] = f"{1000 * pairs.match_seconds_per_query:.1f}"
    return column


if __name__ == "__main__":
    main()
