"""What k-reciprocal re-ranking does to retrieval on the default model's held-out individuals, per shared set.

Usage: python bench/bench_rerank.py [--model NAME=PATH ...] [--work DIR]

Each model's held-out photos (bench/heldout.py) are ranked leave-one-out, a photo's own encounter
never its match, once by the embedding's distance and once by catalog.rerank's re-ranked distance
(the paper's parameters, not fitted here); rank-1, mAP, ROC AUC and TAR at FAR 1% of each, then the
re-ranked minus plain rank-1 and mAP with their 95% interval over resampled animals.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from bench_models import DEFAULT_MODEL, MEASURES
from benchtable import bench_console
from heldout import held_out_or_say, named_models
from rich.table import Table

from catalog.embed import Embedder
from catalog.offline.evaluate import embed_labelled
from catalog.offline.metrics import paired_bootstrap, pairwise_distances, reid_metrics_by_query
from catalog.rerank import rerank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH of an ONNX model to add")
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    args = parser.parse_args()
    console = bench_console()
    held_out = held_out_or_say(args.work, console)
    if not held_out:
        return
    models = {"shipped default": DEFAULT_MODEL, **named_models(args.model)}
    for label, path in models.items():
        embedder = Embedder(path)
        table = Table(title=f"{label}: plain vs re-ranked, held-out individuals of the default model")
        table.add_column("measure")
        for name, photos in held_out.items():
            table.add_column(f"{name} ({len({p.individual for p in photos})})", justify="right")
        rows: dict[str, list[str]] = {}
        for photos in held_out.values():
            vectors, kept, _, _, _ = embed_labelled(embedder, photos, 64)
            labels = [p.class_key(embedder.card.sides) for p in kept]
            encounters = [p.encounter for p in kept]
            plain_distances = pairwise_distances(vectors.astype(np.float64))
            started = time.perf_counter()
            reranked_distances = rerank(plain_distances)
            seconds = time.perf_counter() - started
            results = {}
            for way, distances in (("plain", plain_distances), ("re-ranked", reranked_distances)):
                results[way] = reid_metrics_by_query(vectors, labels, encounters, distances=distances)
            for measure, value in MEASURES.items():
                for way in ("plain", "re-ranked"):
                    rows.setdefault(f"{measure}, {way}", []).append(f"{value(results[way][0]):.3f}")
            plain_queries, reranked_queries = results["plain"][1], results["re-ranked"][1]
            animals = np.asarray([kept[row].individual for row in plain_queries.rows])
            for measure, field in (("rank-1", "rank1"), ("mAP", "average_precision")):
                difference, low, high = paired_bootstrap(
                    getattr(reranked_queries, field), getattr(plain_queries, field), animals
                )
                sure = "*" if low > 0 or high < 0 else " "
                rows.setdefault(f"{measure}: re-ranked - plain", []).append(
                    f"{difference:+.3f} ({low:+.2f}, {high:+.2f}){sure}"
                )
            rows.setdefault("photos", []).append(str(len(kept)))
            rows.setdefault("re-ranking seconds", []).append(f"{seconds:.2f}")
        for measure, cells in rows.items():
            table.add_row(measure, *cells)
        console.print(table)


if __name__ == "__main__":
    main()
