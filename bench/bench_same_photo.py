"""One photograph seen twice: how verify's same-pixels test sees copies, crops of one frame,
stamped photos and real re-sightings.

Usage: python bench/bench_same_photo.py [--pairs 6]

Pairs built for it: a drawn photo and its resized (0.7) JPEG (q75) copy; two overlapping crops of
one drawn frame; two drawn photos of one fish; two different drawn fish with the same 60x30 px
stamp; and from the shared sets (when present) a photo against its resized copy and against later
photos of the same animal (zebra frames, fs48 sequences, nyala). Per kind: inliers, identical
inliers, the identical inliers' bounding box as a share of the photo, and how many pairs the rule
calls one photograph.
"""

from __future__ import annotations

import argparse
import csv
import io

import numpy as np
from benchtable import bench_console, measures_table
from heldout import SHARED
from PIL import Image

from catalog import verify
from catalog.synthetic import Traps, make_fish, photograph

Pair = tuple[Image.Image, Image.Image]


def copy_of(photo: Image.Image, scale: float = 0.7, quality: int = 75) -> Image.Image:
    buffer = io.BytesIO()
    photo.convert("RGB").resize((int(photo.width * scale), int(photo.height * scale))).save(
        buffer, "JPEG", quality=quality
    )
    return Image.open(buffer).convert("RGB")


def drawn_pairs(count: int) -> dict[str, list[Pair]]:
    rng = np.random.default_rng(0)
    kinds: dict[str, list[Pair]] = {k: [] for k in ("copy", "two crops", "same fish", "stamped")}
    for n in range(count):
        fish = make_fish("a", n)
        first, again = (photograph(fish, "left", "body", rng) for _ in range(2))
        width, height = first.size
        kinds["copy"].append((first, copy_of(first)))
        kinds["two crops"].append(
            (first.crop((0, 0, int(width * 0.7), height)), first.crop((int(width * 0.3), 0, width, height)))
        )
        kinds["same fish"].append((first, again))
        stamped = [
            photograph(
                make_fish(k, n + 50 * i),
                "left",
                "body",
                rng,
                traps=Traps(stamp=True),
                stamp_text="2024-06-03",
            )
            for i, k in enumerate("xy")
        ]
        kinds["stamped"].append((stamped[0], stamped[1]))
    return kinds


def shared_pairs(count: int) -> dict[str, list[Pair]]:
    kinds: dict[str, list[Pair]] = {}
    for name, order in (
        ("zebra_rapid", "frame_number"),
        ("fs48_train", "frame"),
        ("nyala", "photo_number_prefix"),
    ):
        labels = SHARED / name / "labels.csv"
        if not labels.is_file():
            continue
        by_animal: dict[str, list[dict[str, str]]] = {}
        for row in csv.DictReader(labels.open(encoding="utf-8")):
            by_animal.setdefault(row["individual_id"], []).append(row)
        for animal in sorted(by_animal)[:count]:
            rows = sorted(by_animal[animal], key=lambda r: int(r[order]))[:4]
            photos = [Image.open(SHARED / name / r["file"]).convert("RGB") for r in rows]
            kinds.setdefault(f"{name} copy", []).append((photos[0], copy_of(photos[0], 0.8, 80)))
            kinds.setdefault(f"{name} same animal", []).extend((photos[0], p) for p in photos[1:])
    return kinds


def measured(pairs: list[Pair]) -> dict[str, str]:
    inliers, identical, spreads, calls = [], [], [], 0
    for a, b in pairs:
        first = verify.describe(a)
        match = verify.match(first, verify.describe(b))
        points = match.lines[match.identical, :2]
        spread = (
            float(np.ptp(points[:, 0]) * np.ptp(points[:, 1])) / (first.size[0] * first.size[1])
            if len(points)
            else 0.0
        )
        inliers.append(match.inliers)
        identical.append(match.identical_count)
        spreads.append(spread)
        calls += match.one_photograph(first.size)
    return {
        "pairs": str(len(pairs)),
        "inliers (median)": f"{np.median(inliers):.0f}",
        "identical inliers (median)": f"{np.median(identical):.0f}",
        "identical area, share of the photo (max)": f"{max(spreads):.3f}",
        "called one photograph": str(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="pairs (or animals) per kind")
    args = parser.parse_args()
    kinds = drawn_pairs(args.pairs) | shared_pairs(args.pairs)
    columns = {kind: measured(pairs) for kind, pairs in kinds.items()}
    bench_console().print(measures_table("One photograph seen twice (verify at 320 px)", columns))


if __name__ == "__main__":
    main()
