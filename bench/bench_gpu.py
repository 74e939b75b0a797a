"""The nightly index on a machine with a GPU: decode, inference and end-to-end rates in one run.

Usage: python bench/bench_gpu.py [FOLDER] [--photos 3000] [--batch-sizes 32,128] [--workers 0]

Prepared for a lent GPU machine, where `onnxruntime-gpu` replaces `onnxruntime` (carry its wheel:
the machine reaches no package index). Embedder chooses the CUDA provider by itself when
onnxruntime lists it; the table says which provider ran, so the script also runs (and checks
itself) on a CPU-only machine. Without FOLDER, a drawn archive of about --photos photos is made.
For each batch size: decode photos/s on all cores (the index's own reader, keypoints off),
inference photos/s on ready tensors, end-to-end `finprint index` photos/s without verification
into a fresh catalogue (its own process, start-up included, as cron runs it), end-to-end /
min(decode, inference), whose target on a GPU box is 0.9 (the GPU infers while the cores decode,
so the slower stage should set the pace; on a CPU the two share the cores, and the shared limit
1/(1/decode + 1/inference) is printed beside it), and the index process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_index import infer_rate
from benchtable import bench_console, measures_table

from catalog.decode import decoded_batches
from catalog.embed import Embedder
from catalog.photos import walk
from catalog.settings import DEFAULT_MODEL_PATH
from catalog.synthetic import generate_archive

# generate_archive's fish are seen at some of six surveys, a few photos each: about 7 in all.
PHOTOS_PER_DRAWN_FISH = 7
# Photos the reader keeps in flight (it decodes two batches ahead), as the index does.
DECODE_BATCH = 32


def decode_all(folder: Path, embedder: Embedder, workers: int) -> tuple[float, np.ndarray]:
    """Photos/s of the index's own reader (read, hash, decode, fit to the model) on all cores."""
    files = [(folder, found) for found in walk(folder)]
    seconds: dict[str, float] = {"decode": 0.0}
    started = time.perf_counter()
    decoded = [
        photo
        for batch, _ in decoded_batches(files, embedder.card, workers, DECODE_BATCH, seconds)
        for photo in batch
    ]
    elapsed = time.perf_counter() - started
    return len(files) / elapsed, np.stack([photo.tensor for photo in decoded])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--photos", type=int, default=3000)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: one per core)")
    args = parser.parse_args()
    console = bench_console()
    embedder = Embedder(DEFAULT_MODEL_PATH)
    console.print(f"providers: {', '.join(embedder.providers)}; cores: {os.cpu_count()}", markup=False)
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder
        if folder is None:
            folder = Path(scratch) / "archive"
            generate_archive(folder, n_individuals=max(2, args.photos // PHOTOS_PER_DRAWN_FISH), seed=11)
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        # The index runs first, while this process is small: Linux counts a child's memory from
        # before its exec (this process's pages) in its peak, so it must not be big yet.
        own_peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
        indexed = {
            batch_size: index_in_a_process(
                folder, Path(scratch) / f"catalogue-{batch_size}.duckdb", batch_size, args.workers
            )
            for batch_size in batch_sizes
        }
        decode_per_s, tensors = decode_all(folder, embedder, args.workers)
        for batch_size in batch_sizes:
            photos, end_to_end, provider, peak_gb, _ = indexed[batch_size]
            infer_per_s = infer_rate(tensors, embedder, batch_size)
            limit = min(decode_per_s, infer_per_s)
            shared_limit = 1 / (1 / decode_per_s + 1 / infer_per_s)
            columns[f"batch {batch_size}"] = {
                "photos": f"{photos:,}",
                "decode photos/s (all cores)": f"{decode_per_s:.0f}",
                "inference photos/s (ready tensors)": f"{infer_per_s:.0f}",
                "end-to-end index photos/s, no verification": f"{end_to_end:.0f}",
                "end-to-end / min(decode, inference) (GPU target 0.9)": f"{end_to_end / limit:.2f}",
                # On a CPU both stages share the cores: this is the limit there.
                "end-to-end / (1/(1/decode + 1/inference))": f"{end_to_end / shared_limit:.2f}",
                "peak resident memory of the index (GB)": f"{peak_gb:.2f}",
                "provider": provider,
            }
    console.print(measures_table("The nightly index on this machine", columns))
    console.print(
        f"(an index peak at {own_peak_gb:.2f} GB would be this script's own size, which Linux counts in)",
        markup=False,
    )


def index_in_a_process(
    folder: Path, db: Path, batch_size: int, workers: int, *, verify: bool = False
) -> tuple[int, float, str, float, dict[str, float]]:
    """`finprint index` as cron runs it, in its own process: photos catalogued, photos/s from
    process start to exit, the provider that ran, the process's peak resident memory (GB) and the
    seconds of each stage the run reports (embed, identify, write, group...). Without `verify`, on
    the embedding alone and without the night's grouping."""
    choices = ["--verify", "--group"] if verify else ["--no-verify", "--no-group"]
    command = [
        sys.executable, "-m", "catalog", "index", str(folder), "--db", str(db), "--json", *choices,
        "--batch-size", str(batch_size), "--workers", str(workers),
    ]  # fmt: skip
    environment = {**os.environ, "FINPRINT_NIGHTLY_BACKUP": "false"}
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.DEVNULL, env=environment)
        # wait4: this child's own resource use, not the largest of all children so far.
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"finprint index exited {child.returncode}: {' '.join(command)}")
        output.seek(0)
        summary = json.load(output)
    peak_gb = usage.ru_maxrss / 1024**2  # KiB on Linux
    photos = summary["photos_new"]
    return photos, photos / elapsed, summary["providers"][0], peak_gb, dict(summary.get("seconds") or {})


if __name__ == "__main__":
    main()
