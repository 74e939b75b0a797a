"""Score an ONNX model on labelled photos of individuals (runtime only: onnxruntime and numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.embed import Embedder
from catalog.errors import TrainingDataError
from catalog.labels import read_labelled, read_metadata
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
    # P(same individual) at the card's threshold, from the card's calibration (balanced prior).
    probability_at_threshold: float | None


def evaluate(
    model_path: Path,
    data_dir: Path | None,
    batch_size: int = 64,
    crop: str | None = None,
    metadata: Path | None = None,
    root: Path | None = None,
) -> Evaluation:
    """Embed labelled photos (a folder, or a metadata table) and score retrieval and verification."""
    embedder = Embedder(model_path)
    card = embedder.card
    photos = read_metadata(metadata, root, crop) if metadata else read_labelled(_required(data_dir), crop)
    tensors, kept, unreadable = [], [], []
    for photo in photos:
        try:
            tensors.append(preprocess(photo.path, card.input, photo.bbox))
            kept.append(photo)
        except (OSError, SyntaxError, ValueError):
            unreadable.append(str(photo.path))
    vectors = np.concatenate(
        [embedder.embed(np.stack(tensors[i : i + batch_size])) for i in range(0, len(tensors), batch_size)]
    )
    metrics = reid_metrics(vectors, [p.class_key(card.sides) for p in kept], [p.encounter for p in kept])
    return Evaluation(
        card.model_version,
        card.threshold,
        len(kept),
        unreadable,
        metrics,
        card.match_probability(card.threshold),
    )


def _required(data_dir: Path | None) -> Path:
    if data_dir is None:
        raise TrainingDataError("give a folder of labelled photos, or --metadata TABLE.csv.")
    return data_dir
