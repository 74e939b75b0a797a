"""What the verification guards cost a night: one folder indexed verified under each rule, the
rules alternated in one process so that the machine's drift falls on all of them alike.

Usage: python bench/bench_rule_cost.py [FOLDER] [--rules guarded,previous] [--repeats 3]
(FOLDER: default the shared nyala set, 370 camera photos.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchtable import bench_console, measures_table
from heldout import SHARED
from trust import RULES, rule

from catalog.night import index
from catalog.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=SHARED / "nyala")
    parser.add_argument("--rules", default="guarded,previous")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = [r for r in args.rules.split(",") if r in RULES]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    photos = 0
    for _ in range(args.repeats):
        for name in names:
            with tempfile.TemporaryDirectory() as scratch, rule(name):
                settings = Settings(
                    db_path=Path(scratch) / "c.duckdb", nightly_backup=False, group_encounters=False
                )
                started = time.perf_counter()
                photos = index(settings, [args.folder]).photos_new
                seconds[name].append(time.perf_counter() - started)
    columns = {
        name: {
            "photos": str(photos),
            "seconds, each run": ", ".join(f"{s:.1f}" for s in runs),
            "photos/s, best run": f"{photos / min(runs):.1f}",
        }
        for name, runs in seconds.items()
    }
    bench_console().print(measures_table(f"A verified night of {args.folder}, rules alternated", columns))


if __name__ == "__main__":
    main()
