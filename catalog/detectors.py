"""The keypoint detectors verification can use, by the name a person gives: SIFT or XFeat."""

from __future__ import annotations

from catalog import verify
from catalog.errors import FinprintError
from catalog.vocabulary import KeypointDetector


def named(kind: str) -> verify.Detector:
    """The detector of this kind. Both need OpenCV (RANSAC); XFeat also its shipped network."""
    if kind == KeypointDetector.SIFT:
        return verify.SIFT
    if kind == KeypointDetector.XFEAT:
        from catalog import xfeat

        return xfeat.detector()
    raise FinprintError(
        f"no keypoint detector {kind!r}; choose one of {', '.join(k.value for k in KeypointDetector)}."
    )
