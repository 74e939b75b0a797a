"""Identification at catalogue scale: HNSW build and update, memory, recall@10, assignment time.

Usage: python bench/bench_scale.py [--sizes 10000,100000,1000000] [--shapes model,isotropic]
       [--new 10000] [--dim 128]

Embeddings are synthetic but clustered like a catalogue: individuals of five photos each, unit
vectors. Two shapes:
- model: shaped like the default model's embeddings. Drawn fish (60 fish, both flanks, head and
  body, 3 photos each) are embedded; individuals' centres are drawn with the covariance of those
  views' mean vectors and photos scatter around them with the covariance within a view. Real
  embeddings live in few dimensions (the bench prints how many the model uses on each shared set
  present, and on the drawn shape), and that is what HNSW exploits.
- isotropic: centres and scatter spread evenly over all dimensions, the worst case for any graph
  index (every stranger nearly equidistant), kept as a stress test.
Each catalogue size runs in its own process, so its memory is its own. The new photos are half
new photographs of catalogued individuals, half new individuals.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from benchtable import bench_console, measures_table
from heldout import DEFAULT_MODEL_SETS, SHARED

from catalog.embed import Embedder
from catalog.identify import HNSW_EF_CONSTRUCTION, HNSW_M, Identifier, query_ef
from catalog.offline.evaluate import embed_labelled
from catalog.offline.labels import read_labelled
from catalog.settings import DEFAULT_MODEL_PATH
from catalog.synthetic import generate_labelled

PHOTOS_PER_INDIVIDUAL = 5
BATCH_SIZE = 32
RECALL_PROBES = 1000
ISOTROPIC_SPREAD = 0.35  # a photo's scatter around its centre, per dimension, centres ~ N(0, 1)
# Between the two shapes' typical distances within an individual (about 0.3-0.5) and between
# individuals (about 1.4).
DISTANCE_THRESHOLD = 0.9
REVIEW_BAND = 0.1
DECISIVE_DISTANCE = round(DISTANCE_THRESHOLD * (1 + REVIEW_BAND), 3)


@dataclass(frozen=True)
class Shape:
    """How synthetic embeddings are drawn: mean, and square roots of the two covariances."""

    name: str
    mean: np.ndarray
    between: np.ndarray  # centres = mean + z @ between
    within: np.ndarray  # photo = centre + z @ within


def _root(covariance: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(covariance)
    return np.asarray((vectors * np.sqrt(np.clip(values, 0.0, None))).T, dtype=np.float32)


def isotropic_shape(dim: int) -> Shape:
    eye = np.eye(dim, dtype=np.float32)
    return Shape("isotropic", np.zeros(dim, dtype=np.float32), eye, ISOTROPIC_SPREAD * eye)


def model_shape(model: Path) -> Shape:
    """The default model's embeddings of drawn fish, summarised by their first two moments."""
    with tempfile.TemporaryDirectory() as scratch:
        generate_labelled(Path(scratch), 60, 3, seed=5)
        vectors, photos, _, _, _ = embed_labelled(Embedder(model), read_labelled(Path(scratch)), 64)
    # One view: a fish's flank and crop.
    _, view = np.unique([f"{p.individual}/{p.side}/{p.crop}" for p in photos], return_inverse=True)
    means = np.stack([vectors[view == v].mean(axis=0) for v in range(view.max() + 1)])
    scatter = vectors - means[view]
    within = scatter.T @ scatter / (len(vectors) - len(means))
    centre = means.mean(axis=0)
    return Shape("model", centre.astype(np.float32), _root(np.cov((means - centre).T)), _root(within))


def participation_ratio(covariance: np.ndarray) -> float:
    """How many dimensions a cloud of embeddings effectively uses (all of them: the dimension)."""
    variances = np.linalg.eigvalsh(covariance.astype(np.float64))
    return float(variances.sum() ** 2 / (variances**2).sum())


def shape_covariance(shape: Shape) -> np.ndarray:
    return np.asarray(shape.between.T @ shape.between + shape.within.T @ shape.within)


def real_sets_dimensions(model: Path) -> dict[str, float]:
    """The model's embeddings of up to 400 photos of each shared set, where the sets are here."""
    embedder = Embedder(model)
    found = {}
    for name in DEFAULT_MODEL_SETS:
        if (SHARED / name).is_dir():
            vectors, _, _, _, _ = embed_labelled(embedder, read_labelled(SHARED / name)[:400], 64)
            found[name] = participation_ratio(np.cov(vectors.T))
    return found


def draw_photos(shape: Shape, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal((len(centres), len(shape.mean)), dtype=np.float32) @ shape.within
    photos = centres + noise
    return np.asarray(photos / np.linalg.norm(photos, axis=1, keepdims=True), dtype=np.float32)


def draw_centres(shape: Shape, n: int, rng: np.random.Generator) -> np.ndarray:
    draws = rng.standard_normal((n, len(shape.mean)), dtype=np.float32)
    return np.asarray(shape.mean + draws @ shape.between, dtype=np.float32)


def exact_top10(queries: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices and squared distances of each query's 10 nearest, by brute force."""
    top, squared = [], []
    base_norms = (base**2).sum(1)[None, :]
    for start in range(0, len(queries), 64):
        chunk = queries[start : start + 64]
        d2 = (chunk**2).sum(1)[:, None] + base_norms - 2 * chunk @ base.T
        nearest = np.argpartition(d2, 10, axis=1)[:, :10]
        top.append(nearest)
        squared.append(np.take_along_axis(d2, nearest, axis=1))
    return np.concatenate(top), np.concatenate(squared)


def resident_gb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 1024**3


def measure(shape: Shape, size: int, new: int) -> dict[str, str]:
    """One catalogue size, in a process of its own."""
    rng = np.random.default_rng(size)
    dim = len(shape.mean)
    centres = draw_centres(shape, size // PHOTOS_PER_INDIVIDUAL + 1, rng)
    owners = np.arange(size) // PHOTOS_PER_INDIVIDUAL
    vectors = draw_photos(shape, centres[owners], rng)
    seen = rng.integers(0, len(centres), new // 2)
    new_vectors = np.concatenate(
        [
            draw_photos(shape, centres[seen], rng),
            draw_photos(shape, draw_centres(shape, new - new // 2, rng), rng),
        ]
    )
    rng.shuffle(new_vectors)
    identifier = Identifier(
        dim, distance_threshold=DISTANCE_THRESHOLD, review_band_fraction=REVIEW_BAND, neighbours_k=10
    )
    before_build = resident_gb()
    started = time.perf_counter()
    identifier.add("p", [str(i) for i in range(size)], [f"FP-{o:07d}" for o in owners], vectors)
    build = time.perf_counter() - started
    graph_gb = resident_gb() - before_build
    graph = identifier._graphs["p"].index  # the bench measures hnswlib itself, below the partition graph
    graph.set_ef(query_ef(size))
    labels, _ = graph.knn_query(new_vectors[:RECALL_PROBES], k=10)
    started = time.perf_counter()
    for vector in new_vectors:
        identifier.assign("p", vector)
    one_by_one = time.perf_counter() - started
    # As the nightly index does: each batch queried at once, decided photo by photo, then added.
    assign = update = 0.0
    for first in range(0, len(new_vectors), BATCH_SIZE):
        chunk = new_vectors[first : first + BATCH_SIZE]
        started = time.perf_counter()
        decisions = [
            identifier.assign("p", vector, prefetched=near)
            for vector, near in zip(chunk, identifier.prefetch("p", chunk), strict=True)
        ]
        assign += time.perf_counter() - started
        started = time.perf_counter()
        ids = [str(size + first + i) for i in range(len(chunk))]
        found = [d.individual_id or f"new-{i}" for d, i in zip(decisions, ids, strict=True)]
        identifier.add("p", ids, found, chunk)
        update += time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    started = time.perf_counter()
    truth, truth_squared = exact_top10(new_vectors[:RECALL_PROBES], vectors)
    exact = (time.perf_counter() - started) * new / RECALL_PROBES
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, truth, strict=True)])
    # The neighbours that can change a decision: those within the threshold and its review band.
    decisive = [set(b[d < DECISIVE_DISTANCE**2]) for b, d in zip(truth, truth_squared, strict=True)]
    decisive_found = sum(len(set(a) & b) for a, b in zip(labels, decisive, strict=True))
    decisive_recall = decisive_found / max(1, sum(len(b) for b in decisive))
    return {
        "query ef": str(query_ef(size)),
        "build s": f"{build:.1f}",
        f"update s (add {new:,})": f"{update:.1f}",
        "graph and ids GB": f"{graph_gb:.2f}",
        "peak RSS GB": f"{peak_gb:.2f}",
        "recall@10": f"{recall:.4f}",
        f"recall of neighbours under {DECISIVE_DISTANCE}": f"{decisive_recall:.4f}",
        f"assign {new:,} one by one s": f"{one_by_one:.1f}",
        f"assign {new:,} batched s": f"{assign:.1f}",
        f"exact numpy search of {new:,} s": f"{exact:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--shapes", default="model,isotropic")
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args()
    console = bench_console()
    for name, dimensions in real_sets_dimensions(args.model).items():
        console.print(f"the model's embeddings of {name}: {dimensions:.1f} effective dimensions")
    columns: dict[str, dict[str, str]] = {}
    for name in args.shapes.split(","):
        shape = model_shape(args.model) if name == "model" else isotropic_shape(args.dim)
        console.print(
            f"{name} shape: {participation_ratio(shape_covariance(shape)):.1f} effective dimensions "
            "(participation ratio of the embeddings' covariance)"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            # A fresh process per size: peak memory is then this size's alone.
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                columns[f"{name} {size:,}"] = pool.apply(measure, (shape, size, args.new))
    console.print(
        measures_table(
            f"HNSW identification at scale (M {HNSW_M}, ef_construction {HNSW_EF_CONSTRUCTION})", columns
        )
    )
    console.print(
        "graph and ids GB: resident memory added by building the graph. peak RSS: the whole process "
        "before the exact check (the benchmark's own vectors included). exact numpy search: "
        f"brute force for the new photos, extrapolated from {RECALL_PROBES}."
    )


if __name__ == "__main__":
    main()
