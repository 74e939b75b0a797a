"""How long reading a shortlist's cached keypoints back from DuckDB takes as the catalogue grows.

Usage: python bench/bench_feature_lookup.py [--sizes 1000,8000] [--blob-kb 100]
The query is the store's own (Store.local_features) on a local_features table of that many photos,
each with a blob the size of a photo's keypoints (about 100 KB with RootSIFT); beside it, the same
lookup selecting the photo ids alone, to show what the blob column costs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchtable import bench_console, measures_table

from catalog.store import Store

SHORTLIST = 20
REPEATS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,8000")
    parser.add_argument("--blob-kb", type=int, default=100)
    args = parser.parse_args()
    blob = os.urandom(args.blob_kb * 1000)
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch, Store.open(Path(scratch) / "lookup.duckdb") as store:
        written = 0
        for size in (int(s) for s in args.sizes.split(",")):
            for start in range(written, size, 500):
                ids = [f"{i:064d}" for i in range(start, min(size, start + 500))]
                store.write_embeddings("m", [], [], [(photo_id, blob) for photo_id in ids], "sift")
            written = size
            shortlist = [f"{i:064d}" for i in range(0, size, size // SHORTLIST)][:SHORTLIST]
            started = time.perf_counter()
            for _ in range(REPEATS):
                store.local_features(shortlist, "sift")
            with_blobs = (time.perf_counter() - started) / REPEATS
            started = time.perf_counter()
            for _ in range(REPEATS):
                store.read_only_sql(
                    "SELECT photo_id FROM local_features WHERE photo_id IN ("
                    + ",".join(f"'{photo_id}'" for photo_id in shortlist)
                    + ")"
                )
            ids_only = (time.perf_counter() - started) / REPEATS
            columns[f"{size} photos"] = {
                f"keypoints of {SHORTLIST} photos (ms)": f"{1000 * with_blobs:.1f}",
                "their ids alone (ms)": f"{1000 * ids_only:.1f}",
            }
    bench_console().print(
        measures_table(f"Reading a shortlist's keypoints back ({args.blob_kb} KB each)", columns)
    )


if __name__ == "__main__":
    main()
