"""Inference speed of each embedding backbone at a few input sizes, through onnxruntime on this CPU.

Usage: python bench/bench_backbones.py [--seconds 3] [--sizes 112x224,160x160,224x224]
Each network (random weights: speed does not depend on them) is exported to ONNX as `finprint
train` exports it and run on a ready batch of 32 for --seconds; photos/s side by side in one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from benchtable import bench_console, measures_table

from catalog.modelcard import INPUT_NAME, OUTPUT_NAME
from catalog.train.nets import build_backbone

BATCH = 32


def photos_per_second(backbone: str, height: int, width: int, seconds: float, scratch: Path) -> float:
    model = build_backbone(backbone, 128, 3).eval()
    path = scratch / f"{backbone}-{height}x{width}.onnx"
    torch.onnx.export(
        model, (torch.randn(2, 3, height, width),), str(path), input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).normal(size=(BATCH, 3, height, width)).astype(np.float32)
    session.run(None, {INPUT_NAME: batch})  # warm-up
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        session.run(None, {INPUT_NAME: batch})
        done += BATCH
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", default="112x224,160x160,224x224")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    # The small CNN pools to a fixed grid and runs at its own 64x128 only.
    runs = [("small", 64, 128)] + [
        (backbone, h, w) for backbone in ("mobilenetv2", "efficientnet-lite0") for h, w in sizes
    ]
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for backbone, h, w in runs:
            rate = photos_per_second(backbone, h, w, args.seconds, Path(scratch))
            columns[f"{backbone} {h}x{w}"] = {"photos/s": f"{rate:.0f}"}
    bench_console().print(measures_table(f"ONNX inference, batch {BATCH}, this machine's cores", columns))


if __name__ == "__main__":
    main()
