"""The model card: the preprocessing and matching contract stored inside each ONNX file."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog.calibration import Calibration
from catalog.errors import ModelCardError
from catalog.vocabulary import Sides

CARD_KEY = "finprint"
CARD_FORMAT = 1
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"


@dataclass(frozen=True)
class InputSpec:
    """How pixels become the network's input tensor."""

    height: int
    width: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class EmbeddingSpec:
    """What the network's output vectors are."""

    dim: int
    metric: str = "euclidean"
    l2_normalized: bool = True

    def matches_everything(self, threshold: float) -> bool:
        """Whether a distance threshold would call every pair a match: unit vectors are at most 2
        apart."""
        return self.l2_normalized and threshold >= 2


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to use an embedding network correctly (docs/identification.md, "The model card")."""

    input: InputSpec
    embedding: EmbeddingSpec
    threshold: float
    sides: Sides
    model_version: str
    trained_on: dict[str, Any] = field(default_factory=dict)
    # Extra keys written by newer finprints are kept, so reading and writing a card loses nothing.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def calibration(self) -> Calibration | None:
        """Distance -> P(same individual), when the card carries one."""
        return Calibration.from_card(self.extra.get("calibration"))

    def match_probability(self, distance: float | None) -> float | None:
        calibration = self.calibration
        return None if calibration is None or distance is None else calibration.probability(distance)

    def to_json(self) -> str:
        body: dict[str, Any] = {"format": CARD_FORMAT}
        body["input"] = {**asdict(self.input), "mean": list(self.input.mean)}
        body["input"]["std"] = list(self.input.std)
        body["embedding"] = asdict(self.embedding)
        body["threshold"] = self.threshold
        body["sides"] = self.sides.value
        body["model_version"] = self.model_version
        body["trained_on"] = self.trained_on
        body.update(self.extra)
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: Path | str = "model card") -> ModelCard:
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelCardError(source, f"model card is not JSON ({exc})") from exc
        return card_from_dict(body, source)


def _check_input(spec: InputSpec, source: Path | str) -> None:
    """The input a card describes must be one a photo can be turned into."""
    channels = spec.channels
    if channels not in (1, 3):
        raise ModelCardError(source, f"input channels must be 1 or 3, not {channels}")
    if len(spec.mean) != channels or len(spec.std) != channels:
        raise ModelCardError(source, "mean and std must have one value per input channel")
    if not all(math.isfinite(v) for v in (*spec.mean, *spec.std)):
        raise ModelCardError(source, "mean and std must be finite numbers")
    # A std this small turns ordinary pixels into infinities, and the embeddings into NaN.
    if any(s < 1e-3 for s in spec.std):
        raise ModelCardError(source, "std values must be at least 0.001")
    if spec.height < 8 or spec.width < 8:
        raise ModelCardError(source, "input height and width must be at least 8 pixels")


def _check_decision(embedding: EmbeddingSpec, threshold: float, source: Path | str) -> None:
    """The threshold must be able to decide anything at all."""
    if embedding.metric != "euclidean":
        raise ModelCardError(source, f"metric {embedding.metric!r} unsupported (use euclidean)")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ModelCardError(source, "threshold must be a positive, finite distance")
    if embedding.matches_everything(threshold):
        raise ModelCardError(
            source, f"threshold {threshold} would match every photo (unit vectors are at most 2 apart)"
        )


def card_from_dict(body: dict[str, Any], source: Path | str) -> ModelCard:
    """Validate a parsed card and build the typed value."""
    if body.get("format") != CARD_FORMAT:
        raise ModelCardError(source, f"model card format {body.get('format')!r} is not supported")
    try:
        raw_input = body["input"]
        channels = int(raw_input["channels"])
        spec = InputSpec(
            height=int(raw_input["height"]),
            width=int(raw_input["width"]),
            channels=channels,
            mean=tuple(float(v) for v in raw_input["mean"]),
            std=tuple(float(v) for v in raw_input["std"]),
        )
        raw_embedding = body["embedding"]
        embedding = EmbeddingSpec(
            dim=int(raw_embedding["dim"]),
            metric=str(raw_embedding.get("metric", "euclidean")),
            l2_normalized=bool(raw_embedding.get("l2_normalized", True)),
        )
        threshold = float(body["threshold"])
        raw_sides = str(body.get("sides", Sides.SPLIT.value))
        model_version = str(body["model_version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelCardError(source, f"model card is missing or has a bad field ({exc})") from exc
    _check_input(spec, source)
    _check_decision(embedding, threshold, source)
    if raw_sides not in {s.value for s in Sides}:
        raise ModelCardError(source, f"sides must be 'split' or 'merged', not {raw_sides!r}")
    known = {"format", "input", "embedding", "threshold", "sides", "model_version", "trained_on"}
    extra = {k: v for k, v in body.items() if k not in known}
    return ModelCard(
        input=spec,
        embedding=embedding,
        threshold=threshold,
        sides=Sides(raw_sides),
        model_version=model_version,
        trained_on=dict(body.get("trained_on") or {}),
        extra=extra,
    )


def read_card(model_path: Path) -> ModelCard:
    """Read the card from an ONNX file's metadata, using onnxruntime only (no onnx package)."""
    import onnxruntime as ort

    if not model_path.is_file():
        raise ModelCardError(model_path, "no such model file")
    try:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise ModelCardError(model_path, f"not a loadable ONNX model ({exc})") from exc
    return card_from_session(session, model_path)


def card_from_session(session: Any, source: Path | str) -> ModelCard:
    """Read and check the card of an open onnxruntime session against its graph."""
    props = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in props:
        raise ModelCardError(source, f"no '{CARD_KEY}' entry in the ONNX metadata")
    card = ModelCard.from_json(props[CARD_KEY], source)
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ModelCardError(
            source,
            f"graph must take '{INPUT_NAME}' and give '{OUTPUT_NAME}' (has {inputs}->{outputs})",
        )
    return card
