"""How long reading a shortlist's keypoints back takes as the catalogue grows, and what it took in DuckDB.

Usage: python bench/bench_feature_lookup.py [--sizes 1000,10000,30000] [--blob-kb 100]
The store's own lookup (Store.local_features: the keypoints file beside the catalogue) on that
many photos, each with its own random blob the size of a photo's keypoints (about 100 KB with
RootSIFT; identical blobs would let DuckDB compress them away); beside it, the same lookup on a
DuckDB table of the same rows, where finprint kept keypoints until schema 10.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from benchtable import bench_console, measures_table

from catalog.store import Store

SHORTLIST = 20
REPEATS = 7
PER_WRITE = 500


def _median_ms(lookup: Callable[[list[str]], object], photo_ids: list[str], rng: random.Random) -> float:
    seconds = []
    for _ in range(REPEATS):
        shortlist = rng.sample(photo_ids, SHORTLIST)
        started = time.perf_counter()
        lookup(shortlist)
        seconds.append(time.perf_counter() - started)
    return 1000 * statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,30000")
    parser.add_argument("--blob-kb", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(0)
    columns: dict[str, dict[str, str]] = {}
    photo_ids: list[str] = []
    with tempfile.TemporaryDirectory() as scratch, Store.open(Path(scratch) / "lookup.duckdb") as store:
        column_store = duckdb.connect(str(Path(scratch) / "column.duckdb"))
        column_store.execute(
            "CREATE TABLE local_features (photo_id TEXT PRIMARY KEY, detector TEXT, features BLOB)"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            while len(photo_ids) < size:
                rows = [
                    (f"{rng.getrandbits(256):064x}", os.urandom(args.blob_kb * 1000))
                    for _ in range(PER_WRITE)
                ]
                photo_ids += [photo_id for photo_id, _ in rows]
                store.write_embeddings("m", [], [], rows, "sift")
                column_store.execute(
                    "INSERT INTO local_features SELECT unnest($ids), 'sift', unnest($blobs)",
                    {"ids": [r[0] for r in rows], "blobs": [r[1] for r in rows]},
                )
            column_store.execute("CHECKPOINT")
            now = _median_ms(lambda ids: store.local_features(ids, "sift"), photo_ids, rng)
            before = _median_ms(
                lambda ids: column_store.execute(
                    "SELECT photo_id, features FROM local_features "
                    "WHERE detector = 'sift' AND photo_id IN (SELECT unnest($ids))",
                    {"ids": ids},
                ).fetchall(),
                photo_ids,
                rng,
            )
            columns[f"{len(photo_ids):,} photos"] = {
                f"keypoints file: {SHORTLIST} photos' keypoints (ms)": f"{now:.1f}",
                "DuckDB column, as before schema 10 (ms)": f"{before:.1f}",
            }
        column_store.close()
    bench_console().print(
        measures_table(f"Reading a shortlist's keypoints back ({args.blob_kb} KB each)", columns)
    )


if __name__ == "__main__":
    main()
