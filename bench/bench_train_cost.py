"""What `finprint train` costs a user: minutes for about 4,000 real photos, per epoch and in all.

Usage: python bench/bench_train_cost.py [--sets fs48_train,nyala,lions,att_faces,zebra_rapid] [--work DIR]

Trains today's recipe (`finprint train`'s defaults) on the shared real sets together (3,763
photos of 224 animals: photos of the sizes cameras write, decoded as a night decodes them) twice,
for 1 and for 2 epochs, in this process. The two wall times give the fixed part (decoding every
photo once, the threshold's calibration, the export) and the part each epoch adds; from them, the
time of the default 30 epochs, of 12, and of a final fit (--final-fit: a second training on every
animal, the validation fifth included). The target: 4,000 photos in under an hour on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from bench_recipe import BASE, SHARED
from benchtable import bench_console
from rich.console import Console
from rich.table import Table

from catalog.offline.labels import read_sources
from catalog.train.loop import TrainConfig, train

REAL_SETS = "fs48_train,nyala,lions,att_faces,zebra_rapid"
# What `finprint train` does unless told otherwise (TrainConfig's defaults).
DEFAULT_EPOCHS = TrainConfig.epochs
TRAINED_SHARE = 1 - TrainConfig.validation_fraction
TARGET_PHOTOS, TARGET_MINUTES = 4000, 60


def timed_training(folders: tuple[Path, ...], epochs: int, work: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every thread) of one training of `epochs`."""
    out = work / f"cost-{epochs}.onnx"
    config = TrainConfig(
        data_dirs=folders, out_path=out, epochs=epochs, checkpoint_dir=work / f"ck{epochs}", **BASE
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    train(config, Console(quiet=True))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return time.perf_counter() - started, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=REAL_SETS)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    console = bench_console()
    folders = tuple(SHARED / name for name in args.sets.split(",") if (SHARED / name).is_dir())
    if not folders:
        raise SystemExit(f"none of {args.sets} under {SHARED}")
    photos = read_sources(folders)
    animals = len({p.individual for p in photos})
    work = args.work or Path(tempfile.mkdtemp(prefix="finprint-train-cost-"))
    one_wall, one_cpu = timed_training(folders, 1, work)
    two_wall, two_cpu = timed_training(folders, 2, work)
    per_epoch, fixed = two_wall - one_wall, 2 * one_wall - two_wall
    # Training sees the photos of the animals not held out to set the threshold.
    trained_photos = TRAINED_SHARE * len(photos)
    table = Table(
        title=f"finprint train, today's recipe, {len(photos)} photos of {animals} animals, "
        f"{os.cpu_count()} CPUs (wall minutes; one run)"
    )
    for column in ("what", "minutes", f"scaled to {TARGET_PHOTOS:,} photos"):
        table.add_column(column, justify="left" if column == "what" else "right")
    scale = TARGET_PHOTOS / len(photos)

    def row(what: str, seconds: float) -> None:
        table.add_row(what, f"{seconds / 60:.1f}", f"{seconds * scale / 60:.1f}")

    row("fixed: decoding, calibration, export", fixed)
    row("one epoch", per_epoch)
    row("12 epochs", fixed + 12 * per_epoch)
    row(f"{DEFAULT_EPOCHS} epochs (the default)", fixed + DEFAULT_EPOCHS * per_epoch)
    # A final fit's second training: every photo, the same epochs, no second calibration.
    row(
        f"{DEFAULT_EPOCHS} epochs with --final-fit",
        fixed + DEFAULT_EPOCHS * per_epoch * (1 + 1 / TRAINED_SHARE),
    )
    console.print(table)
    epoch_cpu = two_cpu - one_cpu
    console.print(
        f"One epoch: {epoch_cpu / 60:.1f} CPU minutes (every thread), "
        f"{epoch_cpu / 60 / (trained_photos / 1000):.2f} per 1,000 photos trained on; "
        f"the target is {TARGET_PHOTOS:,} photos in under {TARGET_MINUTES} minutes."
    )


if __name__ == "__main__":
    main()
