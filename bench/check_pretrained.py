"""Is a loaded backbone really the ImageNet one? Lite0's classifier on photos of known animals, and
MobileNetV2's nearest-neighbour retrieval beside the same network from random weights.

Usage: python bench/check_pretrained.py   (needs the train extra and the shared sets)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from benchtable import bench_console
from PIL import Image
from rich.table import Table

from catalog.offline.labels import read_labelled
from catalog.offline.metrics import reid_metrics
from catalog.train import pretrained
from catalog.train.loop import IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD
from catalog.train.nets import EfficientNetLite0, MobileNetV2Embedder
from catalog.vocabulary import Sides

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# ImageNet-1k classes the shared sets' animals belong to (or, for nyala, resemble).
EXPECTED = {
    "zebra_rapid": (340, "zebra"),
    "lions": (291, "lion"),
    "fs48_train": (1, "goldfish"),
    "nyala": (352, "impala"),
}
PHOTOS_PER_SET = 12


def _sample(name: str) -> list[Path]:
    photos = sorted(read_labelled(SHARED / name), key=lambda p: str(p.path))
    step = max(1, len(photos) // PHOTOS_PER_SET)
    return [p.path for p in photos[::step][:PHOTOS_PER_SET]]


def _batch(paths: list[Path], mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    pixels = [
        np.asarray(Image.open(p).convert("RGB").resize((224, 224)), dtype=np.float32) / 255 for p in paths
    ]
    stacked = (np.stack(pixels) - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(stacked.transpose(0, 3, 1, 2).copy())


def main() -> None:
    console = bench_console()
    lite = EfficientNetLite0()
    lite.load_state_dict(pretrained.read_state_dict(pretrained.fetch("efficientnet-lite0")), strict=True)
    lite.eval()
    table = Table(title="EfficientNet-Lite0's ImageNet classifier on shared photos")
    for column in ("set", "expected class", "top-1 hits", "top-5 hits", "photos"):
        table.add_column(column)
    for name, (index, label) in EXPECTED.items():
        paths = _sample(name)
        with torch.no_grad():
            top5 = lite(_batch(paths, LITE_MEAN, LITE_STD)).topk(5, dim=1).indices.numpy()
        table.add_row(
            name, f"{label} ({index})", str(int((top5[:, 0] == index).sum())),
            str(int((top5 == index).any(axis=1).sum())), str(len(paths)),
        )  # fmt: skip
    console.print(table)

    retrieval = Table(title="MobileNetV2 pooled features, leave-one-out rank-1 (all photos of the set)")
    for column in ("set", "ImageNet weights", "random weights"):
        retrieval.add_column(column)
    for name in ("zebra_rapid", "nyala"):
        photos = read_labelled(SHARED / name)
        batch = _batch([p.path for p in photos], IMAGENET_MEAN, IMAGENET_STD)
        scores = []
        for use_imagenet in (True, False):
            torch.manual_seed(0)
            model = MobileNetV2Embedder(16)
            if use_imagenet:
                pretrained.load_backbone_weights(model, "mobilenetv2", pretrained.fetch("mobilenetv2"))
            model.eval()
            with torch.no_grad():
                vectors = torch.nn.functional.normalize(model.trunk(batch).mean(dim=(2, 3)), dim=1).numpy()
            metrics = reid_metrics(
                vectors, [p.class_key(Sides.SPLIT) for p in photos], [p.encounter for p in photos]
            )
            scores.append(f"{metrics.rank1:.3f}")
        retrieval.add_row(name, *scores)
    console.print(retrieval)


if __name__ == "__main__":
    main()
