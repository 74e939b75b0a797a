"""What the benches need to measure trust: the trap archive, and the verification rule as it was
before keypoints were held to the animal (for a side-by-side run)."""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from catalog import fusion, identify, verify
from catalog.synthetic import GROUND_TRUTH_FILE, Traps, generate_archive, read_ground_truth

# The rules a bench can run side by side: today's, today's without one of its guards, and the one
# before the guards.
RULES = ("guarded", "without-one-photograph", "reach-only", "previous")
# The drawn fish of the trap set: the same generator, fish and seed as bench-nights' drawn set.
TRAP_FISH, TRAP_SURVEYS, TRAP_SEED = 24, 6, 5


@contextmanager
def rule(name: str) -> Iterator[None]:
    """Verification as `name` decides: "guarded" (today's); "without-one-photograph" and
    "reach-only" (today's with guards taken off, to see what each does); or "previous": every
    inlier counted wherever it lies, at any embedding distance (no reach, no references beyond
    the shortlist, identical pixels counted), as finprint decided before the guards."""
    patches = {
        "guarded": [],
        # No pixel is ever the same: no two files are one photograph.
        "without-one-photograph": [mock.patch.object(verify, "SAME_PIXELS_RESIDUAL_PX", -1.0)],
        "reach-only": [
            mock.patch.object(verify, "SAME_PIXELS_RESIDUAL_PX", -1.0),
            mock.patch.object(identify, "REFERENCE_INDIVIDUALS", 0),
        ],
        "previous": [
            mock.patch.object(fusion.Fusion, "reach", lambda self, threshold: math.inf),
            mock.patch.object(identify, "REFERENCE_INDIVIDUALS", 0),
            mock.patch.object(verify, "SAME_PIXELS_RESIDUAL_PX", -1.0),
        ],
    }[name]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def trap_archive(archive: Path) -> list[Path]:
    """The drawn survey archive with every trap (`finprint synthesize --kind archive --traps`):
    its survey folders in order; ground_truth.csv beside them."""
    generate_archive(
        archive, n_individuals=TRAP_FISH, n_surveys=TRAP_SURVEYS, seed=TRAP_SEED, traps=Traps.every()
    )
    return sorted(p for p in archive.iterdir() if p.is_dir())


def trap_dataset(folder: Path) -> Path:
    """The trap archive laid out as a shared set (labels.csv: file, individual_id, side, body part)."""
    trap_archive(folder)
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "individual_id", "side", "body_part_from_filename"])
        for row in read_ground_truth(folder / GROUND_TRUTH_FILE):
            writer.writerow([row.path, row.fish_id, row.side, row.crop])
    return folder
