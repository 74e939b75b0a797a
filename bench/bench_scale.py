"""Identification at catalogue scale: HNSW build, recall@10 against exact search, assignment time.

Usage: python bench/bench_scale.py [--sizes 10000,100000,1000000] [--new 10000] [--dim 128]
Embeddings are synthetic but clustered like a catalogue: individuals of a few photos each, unit
vectors, the photos of one individual scattered around its centre.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from benchtable import bench_console
from rich.table import Table

from catalog.identify import Identifier

PHOTOS_PER_INDIVIDUAL = 5
BATCH_SIZE = 32


def clustered(n: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    centres = rng.normal(size=(n // PHOTOS_PER_INDIVIDUAL + 1, dim)).astype(np.float32)
    owners = np.arange(n) // PHOTOS_PER_INDIVIDUAL
    vectors = centres[owners] + rng.normal(scale=0.35, size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, [f"FP-{o:07d}" for o in owners]


def exact_top10(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    top = []
    for start in range(0, len(queries), 256):
        chunk = queries[start : start + 256]
        d2 = (chunk**2).sum(1)[:, None] + (base**2).sum(1)[None, :] - 2 * chunk @ base.T
        top.append(np.argpartition(d2, 10, axis=1)[:, :10])
    return np.concatenate(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    console = bench_console()
    table = Table(title=f"HNSW identification at scale (dim {args.dim}, {args.new} new photos)")
    columns = (
        "catalogue",
        "build s",
        "peak RSS GB",
        "recall@10",
        "assign new s",
        "assign batched s",
        "exact search s",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for size in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(size)
        vectors, owners = clustered(size, args.dim, rng)
        identifier = Identifier(args.dim, distance_threshold=0.9, review_band_fraction=0.1, neighbours_k=10)
        started = time.perf_counter()
        identifier.add("p", [str(i) for i in range(size)], owners, vectors)
        build = time.perf_counter() - started
        # Half the night's photos are re-sightings of catalogued fish, half are new fish.
        strangers, _ = clustered(args.new - args.new // 2, args.dim, np.random.default_rng(size + 1))
        again = vectors[rng.choice(size, args.new // 2, replace=False)]
        again = again + rng.normal(scale=0.05, size=again.shape).astype(np.float32)
        again /= np.linalg.norm(again, axis=1, keepdims=True)
        new_vectors = np.concatenate([again, strangers])
        started = time.perf_counter()
        for vector in new_vectors:
            identifier.assign("p", vector)
        assign = time.perf_counter() - started
        # As the nightly index does: each batch of 32 queried at once, then decided photo by photo.
        started = time.perf_counter()
        for first in range(0, len(new_vectors), BATCH_SIZE):
            chunk = new_vectors[first : first + BATCH_SIZE]
            for vector, near in zip(chunk, identifier.prefetch("p", chunk), strict=True):
                identifier.assign("p", vector, prefetched=near)
        batched = time.perf_counter() - started
        probe = new_vectors[:1000]
        graph = identifier._graphs["p"].index  # the bench measures the graph itself
        labels, _ = graph.knn_query(probe, k=10)
        started = time.perf_counter()
        truth = exact_top10(probe, vectors)
        exact = (time.perf_counter() - started) * len(new_vectors) / len(probe)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, truth, strict=True)])
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        table.add_row(
            f"{size:,}",
            f"{build:.1f}",
            f"{peak_gb:.2f}",
            f"{recall:.4f}",
            f"{assign:.1f}",
            f"{batched:.1f}",
            f"{exact:.1f}",
        )
    console.print(table)
    console.print("exact search s: brute-force numpy for the same new photos (extrapolated from 1000).")


if __name__ == "__main__":
    main()
