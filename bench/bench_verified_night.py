"""What a verified night costs per photo as the catalogue grows: the same night, two catalogue sizes.

Usage: python bench/bench_verified_night.py [--sizes 1000,100000] [--fish 30]

A drawn survey archive is made once; all its nights but the last are indexed with verification
(the README's install), then the catalogue is filled up to each size with stand-in photos: each
has the embedding of a real catalogued photo moved a little (so they crowd the real fish's
shortlists, as a big catalogue's strangers do) and the keypoints of another real photo (so their
verification costs what a stranger's does, and is read from the keypoints file, not a memory
cache). A run with nothing new then builds and saves the graphs, and the last night is indexed
and timed. Each size is built in its own folder; 100,000 stand-ins write about 10 GB of keypoints.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from benchtable import bench_console, measures_table

from catalog import verify
from catalog.night import index
from catalog.settings import Settings
from catalog.store import Batch, IndividualRow, PhotoRow, SightingRow, Store
from catalog.synthetic import generate_archive

STAND_INS_PER_BATCH = 1000
# Each stand-in's embedding: a real photo's, moved by this much (unit vectors; the real fish's
# photos of one view lie about 0.3-0.5 apart).
STAND_IN_JITTER = 0.05


def fill_up(db: Path, size: int, seed: int) -> int:
    """Add stand-in photos until the catalogue holds `size`; returns how many were added."""
    rng = np.random.default_rng(seed)
    with Store.open(db) as store:
        model_version = store.catalogue_model_versions()[0]
        real = store.catalogued_photos(model_version)
        vectors = store.vectors_for([p.photo_id for p in real], model_version)
        keypoints = store.local_features([p.photo_id for p in real], verify.DETECTOR)
        sources = [i for i, p in enumerate(real) if p.photo_id in keypoints]
        wanted = size - len(real)
        if wanted <= 0:
            return 0
        run_id = store.start_run(model_version, 0.0, "bench", ["stand-ins"])
        number = store.next_individual_number()
        for start in range(0, wanted, STAND_INS_PER_BATCH):
            batch = Batch(detector=verify.DETECTOR)
            for n in range(start, min(wanted, start + STAND_INS_PER_BATCH)):
                source = real[sources[n % len(sources)]]
                stranger = real[sources[(n * 7 + 3) % len(sources)]]
                photo_id = f"{n:064x}"
                vector = vectors[sources[n % len(sources)]] + rng.normal(0, STAND_IN_JITTER, vectors.shape[1])
                individual_id = f"FP-{number:06d}"
                batch.photos.append(
                    PhotoRow(
                        photo_id,
                        f"/stand-ins/{photo_id}.jpg",
                        1,
                        1,
                        1,
                        1,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        source.side,
                        source.crop,
                    )
                )
                batch.vectors.append((vector / np.linalg.norm(vector)).astype(np.float32))
                batch.individuals.append(
                    IndividualRow(individual_id, number, source.side, source.crop, photo_id)
                )
                batch.sightings.append(SightingRow(photo_id, individual_id, "new", None, None, None, None))
                batch.features.append((photo_id, keypoints[stranger.photo_id]))
                number += 1
            store.write_batch(run_id, model_version, batch)
        counts = {"files_seen": wanted, "photos_new": wanted, "photos_failed": 0, "individuals_new": wanted}
        store.finish_run(run_id, counts, {})
    return wanted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--fish", type=int, default=30)
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the catalogues (default: a temporary one)"
    )
    args = parser.parse_args()
    console = bench_console()
    if not verify.available():
        console.print("OpenCV is not installed (pip install 'finprint[verify]'): nothing to measure.")
        return
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        archive = Path(scratch) / "archive"
        generate_archive(archive, n_individuals=args.fish, n_surveys=6, seed=3, first_survey=date(2024, 6, 3))
        nights = sorted(p for p in archive.iterdir() if p.is_dir())
        for size in (int(s) for s in args.sizes.split(",")):
            settings = Settings(db_path=Path(scratch) / f"catalogue-{size}.duckdb")
            base = index(settings, nights[:-1])
            if any("verification is off" in w for w in base.warnings):
                console.print("Verification is off for the default model: nothing to measure.")
                return
            started = time.perf_counter()
            added = fill_up(settings.db_path, size, seed=size)
            fill_seconds = time.perf_counter() - started
            started = time.perf_counter()
            index(settings, nights[:-1])
            warm_seconds = time.perf_counter() - started
            # A second run with nothing new: what any night pays before its first photo.
            started = time.perf_counter()
            index(settings, nights[:-1])
            fixed_seconds = time.perf_counter() - started
            started = time.perf_counter()
            night = index(settings, [nights[-1]])
            wall = time.perf_counter() - started
            photos = max(1, night.photos_new)
            beyond_fixed_ms = 1000 * max(0.0, wall - fixed_seconds) / photos
            identify_ms = 1000 * night.seconds["identify"] / photos
            with Store.open(settings.db_path, read_only=True) as store:
                some = [p.photo_id for p in store.catalogued_photos(night.model_version)[:200]]
                blobs = store.local_features(some, verify.DETECTOR).values()
                keypoint_kb = sum(len(b) for b in blobs) / max(1, len(blobs)) / 1000
            columns[f"{size:,} catalogued"] = {
                "stand-ins added (s to write)": f"{added:,} ({fill_seconds:.0f})",
                "graph build, run with nothing new (s)": f"{warm_seconds:.1f}",
                "night's new photos": f"{night.photos_new}",
                "keypoints per photo (KB)": f"{keypoint_kb:.0f}",
                "run with nothing new, graphs saved (s)": f"{fixed_seconds:.1f}",
                "photos/s, whole night": f"{night.photos_new / wall:.1f}",
                "ms/photo beyond the run's fixed cost": f"{beyond_fixed_ms:.1f}",
                "identify ms/photo (shortlist, keypoints, match)": f"{identify_ms:.1f}",
                "describe ms/photo": f"{1000 * night.seconds['describe'] / photos:.1f}",
                "write ms/photo": f"{1000 * night.seconds['write'] / photos:.1f}",
                "matched / review / new": f"{night.matched} / {night.review} / {night.individuals_new}",
            }
            console.print(f"{size:,}: night indexed in {wall:.1f} s", markup=False)
    console.print(measures_table("A verified night as the catalogue grows", columns))


if __name__ == "__main__":
    main()
