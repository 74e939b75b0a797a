"""The best catalogue an embedding allows: each set's held-out photos clustered at every threshold,
the highest B-cubed F1 whose pairwise precision is still at least the nightly target (0.99).

Usage: python bench/bench_ceiling.py [--model NAME=PATH ...] [--work DIR] [--precision 0.99]

No decision rule working on distances alone (a threshold, a review band, the night's groups) can
beat this: it is told the truth to choose its threshold, per set. So when a model's ceiling on a
set is under a target of `just bench nights`, no tuning of the catalogue reaches it with that
model, and the work is in the model. Two linkages: single (a photo joins the individual of its
nearest photo under the threshold: what per-photo identification does at best) and average (the
night's groups: parts join while their mean distance stays under it, catalog.encounters).
Photos are clustered all together, as if the whole archive were one night; a pair of photos is
right when it shows one animal (bench-nights' precision), and the truth an individual should
gather is the model's identity (flank and crop apart when its card splits sides).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from benchtable import bench_console
from heldout import held_out_or_say, named_models
from rich.table import Table

from catalog.embed import Embedder
from catalog.encounters import average_linkage_groups
from catalog.offline.evaluate import embed_labelled
from catalog.offline.labels import LabelledPhoto
from catalog.offline.metrics import ClusteringScores, clustering_scores, pairwise_distances
from catalog.vocabulary import Sides

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "catalog" / "models" / "default.onnx"
# Thresholds tried, in distance units of unit-length embeddings (0 to 2).
THRESHOLDS = np.round(np.arange(0.05, 1.41, 0.025), 3)


@dataclass(frozen=True)
class Ceiling:
    """The best B-cubed F1 at the precision target, where it is reached, and the card's threshold's."""

    bcubed_f1: float
    threshold: float
    pairwise_recall: float
    at_card: ClusteringScores


def single_linkage(distances: np.ndarray, threshold: float) -> list[int]:
    """A cluster id per photo: photos joined through any chain of pairs under `threshold`."""
    parent = list(range(len(distances)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(distances < threshold, 1)), strict=True):
        parent[root(int(i))] = root(int(j))
    return [root(i) for i in range(len(distances))]


def average_linkage(vectors: np.ndarray, threshold: float) -> list[int]:
    """A cluster id per photo from the night's grouping (singletons their own)."""
    found = list(range(len(vectors)))
    for group in average_linkage_groups(vectors, threshold):
        for row in group:
            found[row] = group[0]
    return found


def ceiling(
    linkage: str,
    vectors: np.ndarray,
    photos: list[LabelledPhoto],
    *,
    sides: str,
    card_threshold: float,
    target: float,
) -> Ceiling:
    """The best B-cubed F1 over THRESHOLDS whose pairwise precision (by animal) meets `target`."""
    truth = [p.class_key(sides) for p in photos]
    animals = [p.individual for p in photos]
    if linkage == "single":
        distances = pairwise_distances(vectors.astype(np.float64))
        cluster = partial(single_linkage, distances)
    else:
        cluster = partial(average_linkage, vectors)
    results = {
        threshold: clustering_scores(truth, [str(f) for f in cluster(threshold)], animals)
        for threshold in sorted({*THRESHOLDS.tolist(), card_threshold})
    }
    best = Ceiling(0.0, 0.0, 0.0, results[card_threshold])
    for threshold, result in results.items():
        # Every threshold is tried: average linkage's precision need not fall monotonically.
        if result.pairwise_precision >= target and result.bcubed_f1 > best.bcubed_f1:
            best = Ceiling(result.bcubed_f1, threshold, result.pairwise_recall, best.at_card)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH of an ONNX model to add")
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    parser.add_argument("--precision", type=float, default=0.99, help="the pairwise precision to keep")
    args = parser.parse_args()
    console = bench_console()
    held_out = held_out_or_say(args.work, console)
    if not held_out:
        return
    models = {"shipped default": DEFAULT_MODEL} | named_models(args.model)
    sets = list(held_out)
    table = Table(
        title=f"Best B-cubed F1 at pairwise precision >= {args.precision} @ the threshold it needs; "
        "at the card's threshold: B-cubed F1 / pairwise precision"
    )
    table.add_column("model, linkage (photos)")
    for name in sets:
        table.add_column(f"{name} ({len(held_out[name])})", justify="right")
    for label, path in models.items():
        embedder = Embedder(path)
        embedded = {name: embed_labelled(embedder, photos, 64)[:2] for name, photos in held_out.items()}
        for linkage in ("single", "average"):
            cells = []
            for name in sets:
                vectors, kept = embedded[name]
                best = ceiling(
                    linkage,
                    vectors,
                    kept,
                    sides=embedder.card.sides,
                    card_threshold=embedder.card.threshold,
                    target=args.precision,
                )
                card = best.at_card
                cells.append(
                    f"{best.bcubed_f1:.3f} @{best.threshold:.3f}; "
                    f"{card.bcubed_f1:.3f}/{card.pairwise_precision:.3f}"
                )
            table.add_row(f"{label}, {linkage}", *cells)
    alone = [
        clustering_scores(
            [p.class_key(Sides.SPLIT) for p in held_out[name]], [str(i) for i in range(len(held_out[name]))]
        )
        for name in sets
    ]
    table.add_row("every photo its own individual", *(f"{scores.bcubed_f1:.3f}" for scores in alone))
    console.print(table)


if __name__ == "__main__":
    main()
