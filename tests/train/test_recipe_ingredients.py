"""The training recipe's ingredients: GeM pooling, the identity loss, random erasing, and their card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (pip install '.[train]')")

from PIL import Image  # noqa: E402

from catalog.errors import FinprintError  # noqa: E402
from catalog.modelcard import InputSpec, read_card  # noqa: E402
from catalog.train.data import Augmenter  # noqa: E402
from catalog.train.loop import train  # noqa: E402
from catalog.train.losses import CosFaceHead  # noqa: E402
from catalog.train.nets import EmbeddingHead, GeneralisedMeanPool, build_backbone  # noqa: E402
from tests.train.configs import tiny  # noqa: E402


def test_gem_at_power_one_is_the_average_and_above_it_leans_to_the_brightest() -> None:
    features = torch.rand(2, 8, 5, 7)
    average = features.mean(dim=(2, 3), keepdim=True)
    gem = GeneralisedMeanPool(power=1.0)
    assert torch.allclose(gem(features), average, atol=1e-6)
    cubic = GeneralisedMeanPool()(features)
    assert (cubic > average).all() and (cubic <= features.amax(dim=(2, 3), keepdim=True)).all()


def test_the_identity_loss_is_smoothed_so_a_sure_classifier_still_pays() -> None:
    embeddings = torch.eye(3, 8)
    labels = torch.arange(3)
    sure = CosFaceHead(8, 3, margin=0.0)
    smoothed = CosFaceHead(8, 3, margin=0.0, label_smoothing=0.1)
    with torch.no_grad():
        sure.centres.copy_(torch.eye(3, 8))
        smoothed.centres.copy_(torch.eye(3, 8))
        assert float(sure(embeddings, labels)) < 0.01
        assert float(smoothed(embeddings, labels)) > 0.2


def test_random_erasing_covers_a_rectangle_and_costs_nothing_when_off() -> None:
    spec = InputSpec(32, 64, 3, (0.0,) * 3, (1.0,) * 3)
    grey = Image.new("RGB", (64, 32), (128, 128, 128))
    plain = Augmenter(spec, np.random.default_rng(1), horizontal_flip=False)(grey)
    off = Augmenter(spec, np.random.default_rng(1), horizontal_flip=False, erasing=0.0)(grey)
    assert np.array_equal(plain, off)  # a recipe without it sees the very same photos
    erased = Augmenter(spec, np.random.default_rng(1), horizontal_flip=False, erasing=1.0)(grey)
    noisy = np.abs(erased - plain).max(axis=0) > 0.2
    rows, columns = np.nonzero(noisy)
    assert noisy.mean() >= 0.01
    # Inside one rectangle: most of the box spanned by the changed pixels changed.
    box = noisy[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    assert box.mean() > 0.5


def test_a_gem_model_with_the_identity_loss_exports_records_its_recipe_and_reads_back(
    labelled_set: Path, tmp_path: Path
) -> None:
    from catalog.train.export import onnx_difference
    from catalog.train.onnx_weights import load_exported_weights

    out = tmp_path / "m.onnx"
    config = tiny(
        labelled_set, out, epochs=1, backbone="mobilenetv2", pretrained=False, pooling="gem",
        loss="softmax+triplet", random_erasing=0.5,
    )  # fmt: skip
    result = train(config)
    assert result.parity_difference < 1e-4
    trained_on = read_card(out).trained_on
    assert (trained_on["loss"], trained_on["pooling"]) == ("softmax+triplet", "gem")
    assert trained_on["random_erasing"] == 0.5 and trained_on["label_smoothing"] == 0.1
    card = read_card(out)
    # Fine-tuning rebuilds the network the card names: its learnt GeM power comes back with the
    # weights, and torch then computes what onnxruntime computes.
    rebuilt = build_backbone("mobilenetv2", 16, 3, str(trained_on["pooling"]))
    load_exported_weights(rebuilt, out, card, "mobilenetv2")
    assert rebuilt.head.pool.power.detach().item() != 3.0
    assert onnx_difference(rebuilt, card, out)[0] < 1e-5
    # The identity head learnt a centre per training identity; none of it reaches the file, whose
    # output stays the L2-normalised embedding the card describes.
    import onnx

    from catalog.embed import Embedder
    from catalog.offline.labels import read_labelled

    identities = len({p.class_key(card.sides) for p in read_labelled(labelled_set)})
    shapes = {tuple(tensor.dims) for tensor in onnx.load(out).graph.initializer}
    assert not any(len(shape) == 2 and shape[0] <= identities and shape[1] == 16 for shape in shapes)
    vectors = Embedder(out).embed(np.random.default_rng(0).random((3, 3, 32, 64), dtype=np.float32))
    assert vectors.shape == (3, card.embedding.dim) and card.embedding.l2_normalized
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_an_unknown_loss_or_gem_on_a_net_without_a_head_is_refused_before_training(
    labelled_set: Path, tmp_path: Path
) -> None:
    with pytest.raises(FinprintError, match="unknown loss"):
        train(tiny(labelled_set, tmp_path / "m.onnx", loss="arcface"))
    with pytest.raises(FinprintError, match="--pooling gem needs"):
        train(tiny(labelled_set, tmp_path / "m.onnx", backbone="small", pooling="gem"))
    assert not (tmp_path / "m.checkpoints").exists()


def test_a_model_fine_tuned_from_a_catalogue_keeps_the_pooling_it_was_built_with(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from catalog.modelcard import EmbeddingSpec, ModelCard
    from catalog.train.from_catalogue import CatalogueTrainConfig, _learnt_from_catalogue
    from catalog.vocabulary import Sides

    config = CatalogueTrainConfig(tmp_path / "c.duckdb", tmp_path / "m.onnx", tmp_path / "new.onnx")
    examples: Any = SimpleNamespace(decisions={}, decisions_undone=0, automatic_matches=0, negative_pairs=[])
    spec = InputSpec(32, 64, 3, (0.0,) * 3, (1.0,) * 3)

    def card(trained_on: dict[str, Any]) -> ModelCard:
        return ModelCard(spec, EmbeddingSpec(16), 0.5, Sides.SPLIT, "abc", trained_on)

    # A card from before pooling was a choice averages; a GeM card's fine-tuned successor says gem,
    # so that fine-tuning it again rebuilds the same network.
    assert _learnt_from_catalogue(config, card({"dataset": "x"}), examples, {})["pooling"] == "avg"
    assert _learnt_from_catalogue(config, card({"pooling": "gem"}), examples, {})["pooling"] == "gem"
    assert "parts" not in _learnt_from_catalogue(config, card({"pooling": "gem"}), examples, {})
    assert _learnt_from_catalogue(config, card({"parts": 4}), examples, {})["parts"] == 4


def test_part_strips_each_see_their_own_stretch_of_the_photo_and_the_whole_weighs_half() -> None:
    head = EmbeddingHead(8, 16, dropout=0.0, parts=4).eval()
    features = torch.rand(2, 8, 3, 7)
    embedding = head(features)
    # 8 numbers for the whole photo, 2 for each of 4 strips; each block a scaled unit vector.
    assert embedding.shape == (2, 16)
    norms = [embedding[:, :8].norm(dim=1)] + [
        embedding[:, 8 + 2 * i : 10 + 2 * i].norm(dim=1) for i in range(4)
    ]
    assert torch.allclose(norms[0], torch.full((2,), 0.5**0.5), atol=1e-5)
    assert all(torch.allclose(n, torch.full((2,), (0.5 / 4) ** 0.5), atol=1e-5) for n in norms[1:])
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    # Changing the last columns (the tail end) moves the last strip, not the first.
    changed = features.clone()
    changed[..., 6:] += 1.0
    moved = head(changed)
    assert torch.allclose(moved[:, 8:10], embedding[:, 8:10]) and not torch.allclose(
        moved[:, 14:], embedding[:, 14:]
    )


def test_a_parts_model_exports_unit_vectors_records_its_parts_and_reads_back_for_fine_tuning(
    labelled_set: Path, tmp_path: Path
) -> None:
    from catalog.train.export import onnx_difference
    from catalog.train.onnx_weights import load_exported_weights

    out = tmp_path / "m.onnx"
    result = train(tiny(labelled_set, out, epochs=1, backbone="mobilenetv2", pretrained=False, parts=4))
    assert result.parity_difference < 1e-4
    card = read_card(out)
    assert card.trained_on["parts"] == 4 and card.embedding.dim == 16
    rebuilt = build_backbone("mobilenetv2", 16, 3, "avg", int(card.trained_on["parts"]))
    load_exported_weights(rebuilt, out, card, "mobilenetv2")
    assert onnx_difference(rebuilt, card, out)[0] < 1e-5
    with pytest.raises(FinprintError, match="--parts needs"):
        train(tiny(labelled_set, tmp_path / "s.onnx", backbone="small", parts=4))
    with pytest.raises(FinprintError, match="embedding-dim of at least 20"):
        train(tiny(labelled_set, tmp_path / "s.onnx", backbone="mobilenetv2", parts=10))
