"""Score an ONNX model on labelled photos of individuals (runtime only: onnxruntime and numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.embed import Embedder
from catalog.labels import read_labelled
from catalog.metrics import ReidMetrics, reid_metrics
from catalog.preprocess import preprocess


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model on one labelled set."""

    model_version: str
    card_threshold: float
    photos: int
    unreadable: list[str]
    metrics: ReidMetrics


def evaluate(model_path: Path, data_dir: Path, batch_size: int = 64, crop: str | None = None) -> Evaluation:
    embedder = Embedder(model_path)
    card = embedder.card
    photos = read_labelled(data_dir, crop)
    tensors, kept, unreadable = [], [], []
    for photo in photos:
        try:
            tensors.append(preprocess(photo.path, card.input))
            kept.append(photo)
        except (OSError, SyntaxError, ValueError):
            unreadable.append(str(photo.path))
    vectors = np.concatenate(
        [embedder.embed(np.stack(tensors[i : i + batch_size])) for i in range(0, len(tensors), batch_size)]
    )
    metrics = reid_metrics(vectors, [p.class_key(card.sides) for p in kept], [p.encounter for p in kept])
    return Evaluation(card.model_version, card.threshold, len(kept), unreadable, metrics)
