"""The peak memory and the grouping time of one big night: `finprint index` on N new photos, verified and not.

Usage: python bench/bench_night_memory.py [--photos 20000] [--drawn 2000] [--batch-size 32]

Drawing 20,000 fish takes most of an hour on 2 cores, so --drawn photos are drawn
(catalog.synthetic) and the rest are copies of them with one pixel changed and saved again:
distinct files with distinct content, each a new photo to the index (decoded, embedded, described
and identified like any other; identification matches a copy to its original, as it matches the
photos of a burst). Each run is `finprint index` in its own process, as cron starts it, into a
fresh catalogue; its peak resident memory is read with wait4 on that process (what
`/usr/bin/time -v` reports as "Maximum resident set size"). The target: under 2 GB.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

from bench_gpu import PHOTOS_PER_DRAWN_FISH, index_in_a_process
from benchtable import bench_console, measures_table
from PIL import Image

from catalog.synthetic import generate_archive

MEMORY_TARGET_GB = 2.0


def fill_with_copies(folder: Path, photos: int) -> int:
    """Add copies of the folder's photos, each with one pixel changed, until it holds `photos`
    (as evenly over the originals as they divide); returns how many it holds. Each original is
    read once, for all its copies."""
    originals = sorted(folder.rglob("*.jpg"))
    each, more = divmod(max(0, photos - len(originals)), len(originals))
    for number, original in enumerate(originals):
        with Image.open(original) as image:
            pixels = image.convert("RGB")
        for copy_number in range(1, each + (number < more) + 1):
            changed = pixels.copy()
            x, y = copy_number % changed.width, (copy_number // changed.width) % changed.height
            red, green, blue = changed.getpixel((x, y))  # type: ignore[misc]
            changed.putpixel((x, y), (255 - red, green, blue))
            changed.save(original.with_name(f"{original.stem}_copy{copy_number}.jpg"), quality=92)
    return sum(1 for _ in folder.rglob("*.jpg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20_000)
    parser.add_argument("--drawn", type=int, default=2_000, help="photos drawn; the rest are copies")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: one per core)")
    args = parser.parse_args()
    console = bench_console()
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "archive"
        generate_archive(folder, n_individuals=max(2, args.drawn // PHOTOS_PER_DRAWN_FISH), seed=11)
        drawn = sum(1 for _ in folder.rglob("*.jpg"))
        total = fill_with_copies(folder, args.photos)
        console.print(f"{total:,} photos ({drawn:,} drawn, the rest changed copies)", markup=False)
        for verify in (False, True):
            name = "verified, grouped" if verify else "embedding only"
            db = Path(scratch) / f"catalogue-{'verified' if verify else 'plain'}.duckdb"
            photos, per_second, _, peak_gb, stage_seconds = index_in_a_process(
                folder, db, args.batch_size, args.workers, verify=verify
            )
            columns[name] = {
                "photos catalogued": f"{photos:,}",
                "photos/s (process start to exit)": f"{per_second:.0f}",
                "peak resident memory (GB)": f"{peak_gb:.2f}",
                f"under {MEMORY_TARGET_GB:.0f} GB": "yes" if peak_gb < MEMORY_TARGET_GB else "NO",
                # The end of the night, with the catalogue's lock held (catalog.encounters).
                "grouping, s": f"{stage_seconds['group']:.1f}" if "group" in stage_seconds else "-",
                "whole run, s": f"{stage_seconds.get('total', float('nan')):.0f}",
            }
    console.print(measures_table(f"One night of {total:,} new photos, batch {args.batch_size}", columns))
    # Linux counts a child's pages from before its exec (this script's) in its peak.
    own_peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    console.print(f"(this script's own peak, which an index peak cannot go below: {own_peak_gb:.2f} GB)")


if __name__ == "__main__":
    main()
