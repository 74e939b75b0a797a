"""The model card contract: round trip, validation, and reading it from an ONNX file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.errors import ModelCardError
from catalog.modelcard import EmbeddingSpec, InputSpec, ModelCard, read_card
from catalog.settings import DEFAULT_MODEL_PATH
from catalog.vocabulary import Sides

CARD = ModelCard(
    input=InputSpec(224, 224, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    embedding=EmbeddingSpec(128),
    threshold=0.9,
    sides=Sides.SPLIT,
    model_version="0123456789ab",
    trained_on={"dataset": "x", "individuals": 3, "images": 12},
)


def test_card_round_trips_through_json() -> None:
    assert ModelCard.from_json(CARD.to_json()) == CARD


def test_card_json_has_the_contract_fields() -> None:
    body = json.loads(CARD.to_json())
    assert body["format"] == 1
    assert body["input"] == {
        "height": 224,
        "width": 224,
        "channels": 3,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert body["embedding"] == {"dim": 128, "metric": "euclidean", "l2_normalized": True}
    assert body["threshold"] == 0.9 and body["sides"] == "split"


def test_unknown_keys_survive_a_round_trip() -> None:
    body = json.loads(CARD.to_json())
    body["calibration"] = {"kind": "isotonic"}
    card = ModelCard.from_json(json.dumps(body))
    assert json.loads(card.to_json())["calibration"] == {"kind": "isotonic"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 2}, "format"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": float("inf")}, "finite"),
        ({"threshold": float("nan")}, "finite"),
        ({"threshold": 2.5}, "match every photo"),
        (
            {"input": {"height": 64, "width": 64, "channels": 1, "mean": [0.5], "std": [1e-40]}},
            "at least 0.001",
        ),
        (
            {"input": {"height": 64, "width": 64, "channels": 1, "mean": [float("nan")], "std": [0.5]}},
            "finite",
        ),
        ({"sides": "both"}, "sides"),
        (
            {
                "input": {
                    "height": 224,
                    "width": 224,
                    "channels": 3,
                    "mean": [0.5],
                    "std": [0.5, 0.5, 0.5],
                }
            },
            "mean",
        ),
    ],
)
def test_bad_cards_are_refused_with_the_reason(change: dict[str, object], message: str) -> None:
    body = {**json.loads(CARD.to_json()), **change}
    with pytest.raises(ModelCardError, match=message):
        ModelCard.from_json(json.dumps(body), "m.onnx")


def test_shipped_default_model_carries_a_valid_card() -> None:
    card = read_card(DEFAULT_MODEL_PATH)
    assert card.embedding.l2_normalized
    assert 0 < card.threshold < 2
    assert len(card.model_version) == 12


def test_a_file_that_is_not_onnx_names_the_file(tmp_path: Path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_text("not a model")
    with pytest.raises(ModelCardError, match=r"model\.onnx"):
        read_card(bogus)


def test_card_that_lies_about_the_vector_size_is_refused(tmp_path: Path) -> None:
    import numpy as np
    import onnx

    from catalog.embed import Embedder

    proto = onnx.load(str(DEFAULT_MODEL_PATH))
    for prop in proto.metadata_props:
        if prop.key == "finprint":
            body = json.loads(prop.value)
            body["embedding"]["dim"] = body["embedding"]["dim"] + 1
            prop.value = json.dumps(body)
    liar = tmp_path / "liar.onnx"
    onnx.save(proto, str(liar))
    embedder = Embedder(liar)
    spec = embedder.card.input
    with pytest.raises(ModelCardError, match=r"liar\.onnx"):
        embedder.embed(np.zeros((2, spec.channels, spec.height, spec.width), dtype=np.float32))


def test_onnx_without_a_card_is_refused_with_the_fix(tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(DEFAULT_MODEL_PATH))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelCardError, match="no 'finprint' entry"):
        read_card(bare)
