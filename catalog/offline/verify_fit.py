"""Fit a model's keypoint-verification fusion on labelled photos and write it beside the model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from catalog import fusion as fusion_module
from catalog import verify
from catalog.embed import Embedder
from catalog.errors import FinprintError, TrainingDataError
from catalog.fusion import Fusion
from catalog.offline.evaluate import embed_labelled
from catalog.offline.labels import read_sources, source_of, split_photos
from catalog.offline.shortlist import verify_shortlists


@dataclass(frozen=True)
class FitResult:
    """The fitted fusion and where it was written."""

    fusion: Fusion
    path: Path
    photos: int
    individuals: int


def fit_verification(
    model_path: Path,
    data_dirs: list[Path],
    *,
    shortlist_k: int = fusion_module.DEFAULT_SHORTLIST_K,
    training_seed: int | None = None,
    validation_fraction: float = 0.2,
    split_date: date | None = None,
    detector: verify.Detector = verify.SIFT,
) -> FitResult:
    """Embed and describe the labelled photos, verify each one's shortlist, fit the fusion.

    With `training_seed`, only the individuals `finprint train` held out for validation with that
    seed (same DATA folders, same order) are used: pairs of fish the network was trained on would
    make distances look more trustworthy than they are on new fish."""
    if not verify.available():
        raise FinprintError(
            "keypoint verification needs OpenCV. Install it with: pip install 'finprint[verify]'"
        )
    embedder = Embedder(model_path)
    card = embedder.card
    photos = read_sources(data_dirs)
    if training_seed is not None:
        _, photos = split_photos(photos, "disjoint", validation_fraction, training_seed, split_date)
    vectors, kept, _, features, _ = embed_labelled(embedder, photos, 64, detector)
    identities = len({p.class_key(card.sides) for p in kept})
    if identities < 2:
        raise TrainingDataError("fitting the verification needs photos of at least two individuals.")
    pairs = verify_shortlists(vectors, kept, features, card.sides, shortlist_k, detector=detector)
    # Each source set is its own group: the fused rule must not merge more than the embedding in any.
    sources = np.asarray([source_of(p) for p in kept])
    fitted = fusion_module.fit(
        fusion_module.LabelledPairs(pairs.distance, pairs.inliers, pairs.same, groups=sources[pairs.query]),
        card.threshold,
        card.model_version,
        detector.name,
        shortlist_k=shortlist_k,
    )
    fitted.fitted_on["data"] = [d.name for d in data_dirs]
    fitted.fitted_on["held_out_of_training_seed"] = training_seed
    fitted.fitted_on["photos"] = len(kept)
    path = fusion_module.sidecar_path(model_path, detector.kind)
    fitted.save(path)
    return FitResult(fitted, path, len(kept), identities)
