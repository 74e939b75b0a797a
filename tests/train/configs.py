"""Training configurations small enough for the tests: seconds on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catalog.train.loop import TrainConfig


def tiny(data: Path, out: Path, **overrides: Any) -> TrainConfig:
    """A network small enough to train in seconds on the tiny labelled set."""
    defaults: dict[str, Any] = {
        "input_height": 32,
        "input_width": 64,
        "embedding_dim": 16,
        "individuals_per_batch": 4,
        "photos_per_individual": 3,
        "validation_fraction": 0.34,
    }
    return TrainConfig(data_dirs=(data,), out_path=out, **{**defaults, **overrides})
