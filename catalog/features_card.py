"""The features card: what a learned keypoint network's ONNX file is and where its weights came from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog.errors import ModelCardError

CARD_KEY = "finprint-features"
CARD_FORMAT = 1
INPUT_NAME = "grey"
# What the exported graph gives, in this order (see catalog.train.xfeat.XFeatNet).
OUTPUT_NAMES = ("peaks", "reliability", "descriptors")


@dataclass(frozen=True)
class FeaturesCard:
    """A keypoint network's contract with the runtime, and the provenance of its weights."""

    detector: str
    side_multiple_px: int  # the input's height and width must be multiples of this
    cell_px: int  # input pixels per position of the reliability and descriptor maps
    descriptor_size: int
    # Where the weights came from: file, sha256, package==version, licence, what they learnt from.
    weights: dict[str, str] = field(default_factory=dict)
    format: int = CARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: Path | str) -> FeaturesCard:
        try:
            body: dict[str, Any] = json.loads(text)
            if body.get("format") != CARD_FORMAT:
                raise ModelCardError(
                    source, f"features card format {body.get('format')!r}; this finprint reads {CARD_FORMAT}"
                )
            return cls(
                detector=str(body["detector"]),
                side_multiple_px=int(body["side_multiple_px"]),
                cell_px=int(body["cell_px"]),
                descriptor_size=int(body["descriptor_size"]),
                weights={str(k): str(v) for k, v in body.get("weights", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelCardError(source, f"unreadable features card ({exc})") from exc


def card_from_session(session: Any, source: Path | str) -> FeaturesCard:
    """Read the card of an open onnxruntime session and check the graph's names against it."""
    props = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in props:
        raise ModelCardError(source, f"no '{CARD_KEY}' entry in the ONNX metadata: not a keypoint network")
    card = FeaturesCard.from_json(props[CARD_KEY], source)
    inputs = [i.name for i in session.get_inputs()]
    outputs = tuple(o.name for o in session.get_outputs())
    if inputs != [INPUT_NAME] or outputs != OUTPUT_NAMES:
        raise ModelCardError(
            source, f"graph must take '{INPUT_NAME}' and give {OUTPUT_NAMES} (has {inputs}->{outputs})"
        )
    return card
