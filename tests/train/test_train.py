"""Training: a tiny run exports a carded ONNX model that finprint can index with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (pip install '.[train]')")

from catalog.errors import TrainingDataError  # noqa: E402
from catalog.modelcard import read_card  # noqa: E402
from catalog.offline.labels import read_labelled, split_by_individual  # noqa: E402
from catalog.train.data import negative_pair_batches  # noqa: E402
from catalog.train.loop import TrainConfig, train  # noqa: E402
from catalog.train.losses import batch_hard_triplet_loss, contrastive_loss, threshold_pair_loss  # noqa: E402
from catalog.vocabulary import Sides  # noqa: E402
from tests.train.configs import tiny  # noqa: E402


def test_batch_hard_triplet_loss_by_hand() -> None:
    embeddings = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.5]])
    labels = torch.tensor([0, 0, 1, 1])
    # Anchor 0: hardest positive 1.0, hardest negative 2.0 -> relu(0.5 + 1 - 2) = 0
    # Anchor 1: positive 1.0, negative sqrt(5) -> 0; anchor 2: positive 0.5, negative 2.0 -> 0
    # Anchor 3: positive 0.5, negative 2.5 -> 0. With margin 2: 1.0, 0.764, 0.5, 0.0 -> mean.
    assert float(batch_hard_triplet_loss(embeddings, labels, 0.5)) == pytest.approx(0.0)
    expected = (1.0 + (3.0 - 5**0.5) + 0.5 + 0.0) / 4
    assert float(batch_hard_triplet_loss(embeddings, labels, 2.0)) == pytest.approx(expected, abs=1e-5)


def test_labels_marked_unsure_are_no_negatives_of_each_other() -> None:
    # Labels 0 and 1 are two entries of one fish; 2 is another fish, farther away.
    embeddings = torch.tensor([[0.0, 0.0], [0.2, 0.0], [0.3, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 2])
    unsure = torch.zeros(3, 3, dtype=torch.bool)
    unsure[0, 1] = unsure[1, 0] = True
    # Unmasked, anchor 0's nearest negative is label 1 at 0.3, inside the margin: a loss.
    assert float(batch_hard_triplet_loss(embeddings, labels, 1.0)) > 0.5
    # Masked, every anchor's nearest negative is label 2 (or, for it, 2.7 away): no loss at all;
    # the lone photo of label 1 has no positive and does not count.
    assert float(batch_hard_triplet_loss(embeddings, labels, 1.0, unsure)) == pytest.approx(0.0)
    # The threshold loss neither pushes the two entries apart nor pulls them together.
    pushed = float(threshold_pair_loss(embeddings, labels, 0.5, 0.1))
    assert pushed > 0.0
    assert float(threshold_pair_loss(embeddings, labels, 0.5, 0.1, unsure)) == pytest.approx(0.0)


def test_threshold_pair_loss_by_hand() -> None:
    embeddings = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.6]])
    labels = torch.tensor([0, 0, 1])
    # Threshold 0.4, margin 0.1: the same pair at 0.5 is 0.2 over 0.3 -> 0.04; the different pairs
    # at 0.6 and sqrt(0.61) are beyond 0.5 -> 0.
    assert float(threshold_pair_loss(embeddings, labels, 0.4, 0.1)) == pytest.approx(0.04, abs=1e-5)
    # Threshold 0.6: same pair under 0.5 -> 0; different pairs short of 0.7 by 0.1 and 0.7 - 0.781.
    expected = (0.1**2 + 0.0) / 2
    assert float(threshold_pair_loss(embeddings, labels, 0.6, 0.1)) == pytest.approx(expected, abs=1e-5)


def test_every_pair_people_said_differ_is_in_a_batch_each_epoch() -> None:
    labels = [0, 0, 1, 1, 2, 3, 3]
    pairs = [(0, 2), (4, 5), (1, 6)]
    batches = negative_pair_batches(pairs, labels, 3, 2, np.random.default_rng(0))
    for a, b in pairs:
        assert any(a in batch and b in batch for batch in batches)
    # Each photo of a pair comes with photos of its own individual (the singleton 4 with itself).
    assert all(len(batch) % 3 == 0 for batch in batches)
    assert sum(len(batch) for batch in batches) == 3 * 2 * len(pairs)


def test_contrastive_loss_by_hand() -> None:
    first = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    second = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    same = torch.tensor([1.0, 0.0])
    # Same pair at distance 5 -> 25; different pair at 1 with margin 2 -> (2-1)^2 = 1.
    assert float(contrastive_loss(first, second, same, margin=2.0)) == pytest.approx(13.0, abs=1e-4)


def test_flat_names_give_individual_side_and_crop(labelled_set: Path) -> None:
    photos = read_labelled(labelled_set)
    assert {p.side for p in photos} == {"left", "right"}
    assert {p.crop for p in photos} == {"head", "body"}
    sample = photos[0]
    assert sample.path.name.startswith(sample.individual + "_")
    assert len(read_labelled(labelled_set, crop="head")) == len(photos) // 2


def test_split_is_by_individual_never_by_photo(labelled_set: Path) -> None:
    train_photos, validation = split_by_individual(read_labelled(labelled_set), 0.34, seed=1)
    assert validation and train_photos
    assert not {p.individual for p in train_photos} & {p.individual for p in validation}


@pytest.mark.slow
def test_tiny_training_run_exports_a_carded_model(labelled_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    config = tiny(labelled_set, out, epochs=1)
    result = train(config)
    card = read_card(out)
    assert card == result.card
    assert card.input.height == 32 and card.embedding.dim == 16
    assert card.trained_on["recipe"] == "finprint"
    assert card.trained_on["synthetic_only"] is True  # the labelled set was drawn by the generator
    assert card.calibration is not None and card.match_probability(0.0) >= card.match_probability(2.0)
    assert result.parity_difference <= 1e-4
    assert card.threshold > 0
    # Same seed, same weights: the model version (a hash of the weights) repeats.
    again = train(tiny(labelled_set, tmp_path / "again.onnx", epochs=1))
    assert again.card.model_version == card.model_version


@pytest.mark.slow
def test_seed_recipe_is_one_flag_away(labelled_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "seed.onnx"
    train(
        TrainConfig(
            data_dirs=(labelled_set,),
            out_path=out,
            recipe="seed",
            epochs=1,
            validation_fraction=0.34,
        )
    )
    card = read_card(out)
    assert (card.input.height, card.input.width, card.input.channels) == (100, 100, 1)
    assert card.embedding.dim == 5 and not card.embedding.l2_normalized
    assert json.loads(card.to_json())["trained_on"]["backbone"] == "seed-siamese"


def test_one_individual_is_a_clear_error(tmp_path: Path) -> None:
    from PIL import Image

    for n in range(3):
        Image.new("RGB", (40, 20), (n * 50, 0, 0)).save(tmp_path / f"solo_left_{n}.jpg")
    with pytest.raises(TrainingDataError, match="at least 2 individuals"):
        train(
            TrainConfig(data_dirs=(tmp_path,), out_path=tmp_path / "m.onnx", epochs=1, validation_fraction=0)
        )


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(labelled_set: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "ckpt"
    train(tiny(labelled_set, tmp_path / "a.onnx", epochs=1, checkpoint_dir=checkpoints))
    resumed = train(
        tiny(labelled_set, tmp_path / "b.onnx", epochs=2, resume=True, checkpoint_dir=checkpoints)
    )
    assert [h["epoch"] for h in resumed.history] == [1.0, 2.0]
    assert np.isfinite(resumed.history[-1]["loss"])


def test_k_folds_by_individual_cover_every_fish_once(labelled_set: Path) -> None:
    photos = read_labelled(labelled_set)
    held_out = [split_by_individual(photos, 0.0, seed=2, fold=k, folds=3)[1] for k in range(3)]
    individuals = [{p.individual for p in fold} for fold in held_out]
    assert set().union(*individuals) == {p.individual for p in photos}
    assert sum(len(i) for i in individuals) == len({p.individual for p in photos})  # disjoint
    with pytest.raises(TrainingDataError, match="fold"):
        split_by_individual(photos, 0.0, seed=2, fold=3, folds=3)


def test_init_weights_load_a_local_torchvision_state_dict(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    from catalog.errors import FinprintError
    from catalog.train.loop import _load_init_weights
    from catalog.train.nets import build_backbone

    state = resnet18(weights=None).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.125)
    weights = tmp_path / "resnet18.pth"
    torch.save(state, weights)
    model = build_backbone("resnet18", 16, 3)
    _load_init_weights(model, weights)
    assert torch.all(model.trunk.conv1.weight == 0.125)
    # A state dict for another network fits nothing: refused, not silently ignored.
    unrelated = tmp_path / "other.pth"
    torch.save({"encoder.layer.weight": torch.zeros(3)}, unrelated)
    with pytest.raises(FinprintError, match="none of its weights fit"):
        _load_init_weights(build_backbone("resnet18", 16, 3), unrelated)
    with pytest.raises(FinprintError, match="no such weights file"):
        _load_init_weights(model, tmp_path / "missing.pth")


def test_sets_trained_together_keep_same_named_animals_apart(tmp_path: Path) -> None:
    from PIL import Image

    from catalog.offline.labels import read_sources

    for set_name in ("zebras", "lions"):
        for n in range(2):
            folder = tmp_path / set_name / "10"
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (n * 90, 40, 40)).save(folder / f"{n}.jpg")
    photos = read_sources([tmp_path / "zebras", tmp_path / "lions"])
    assert sorted({p.individual for p in photos}) == ["lions/10", "zebras/10"]
    assert len({p.encounter for p in photos}) == 4
    # One source keeps its own names, as before.
    assert {p.individual for p in read_sources([tmp_path / "zebras"])} == {"10"}


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(labelled_set: Path, tmp_path: Path) -> None:
    from catalog.errors import FinprintError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(FinprintError, match="torch sees no CUDA GPU"):
        train(tiny(labelled_set, tmp_path / "m.onnx", epochs=1, device="cuda"))


def test_the_learning_rate_schedule_runs_for_any_number_of_steps() -> None:
    from catalog.train.steps import warmup_fraction

    for total_steps in range(1, 120):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.1, total_steps=total_steps, pct_start=warmup_fraction(total_steps)
        )
        for _ in range(total_steps):
            optimizer.step()
            schedule.step()


def test_an_unknown_recipe_or_backbone_is_refused_not_trained_as_finprint(
    labelled_set: Path, tmp_path: Path
) -> None:
    from catalog.errors import FinprintError

    with pytest.raises(FinprintError, match="unknown recipe 'seedy': choose one of finprint, seed"):
        train(tiny(labelled_set, tmp_path / "m.onnx", recipe="seedy"))
    with pytest.raises(FinprintError, match="unknown backbone 'mobilenet'"):
        train(tiny(labelled_set, tmp_path / "m.onnx", backbone="mobilenet"))
    assert not (tmp_path / "m.onnx").exists()


def test_too_few_validation_individuals_are_warned_about(labelled_set: Path, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from catalog.train.loop import MIN_VALIDATION_INDIVIDUALS

    output = io.StringIO()
    train(tiny(labelled_set, tmp_path / "m.onnx", epochs=1), Console(file=output, width=200))
    assert MIN_VALIDATION_INDIVIDUALS > 2
    assert "Only 2 validation individual(s)" in output.getvalue()


@pytest.mark.slow
def test_each_sets_validation_is_followed_epoch_by_epoch(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from catalog.synthetic import generate_labelled

    generate_labelled(tmp_path / "bay", 4, 2, seed=31)
    generate_labelled(tmp_path / "reef", 4, 2, seed=32)
    config = TrainConfig(
        data_dirs=(tmp_path / "bay", tmp_path / "reef"), out_path=tmp_path / "m.onnx", input_height=32,
        input_width=64, embedding_dim=16, individuals_per_batch=4, photos_per_individual=2,
        validation_fraction=0.5, epochs=2,
    )  # fmt: skip
    output = io.StringIO()
    result = train(config, Console(file=output, width=100))
    assert all(
        {"validation_rank1/bay", "validation_rank1/reef"} <= record.keys() for record in result.history
    )
    assert "per set: bay" in output.getvalue() and " reef " in output.getvalue()


def test_batches_of_several_sets_each_come_from_one_set_and_every_set_is_drawn() -> None:
    from catalog.train.data import PKSampler

    # 30 animals of a big set and 4 of a small one, 5 photos each.
    groups = ["big"] * 150 + ["small"] * 20
    labels = [i // 5 for i in range(170)]
    sampler = PKSampler(labels, individuals_per_batch=6, photos_per_individual=2, seed=0, groups=groups)
    seen_sets = []
    for batch in [b for _ in range(20) for b in sampler.batches()]:
        sets = {groups[i] for i in batch}
        assert len(sets) == 1, f"a batch mixed sets {sets}"
        seen_sets.append(sets.pop())
    # Drawn by the square root of their photos: the small set about a quarter of the time.
    share_small = seen_sets.count("small") / len(seen_sets)
    assert 0.1 < share_small < 0.45
    # Without groups, batches mix individuals freely across the whole set, as before.
    mixed = PKSampler(labels, individuals_per_batch=6, photos_per_individual=2, seed=0)
    assert any(len({groups[i] for i in batch}) == 2 for _ in range(5) for batch in mixed.batches())


def test_a_weight_ensemble_ends_the_trunk_between_fine_tuned_and_imagenet_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.train import loop
    from catalog.train.nets import build_backbone

    def imagenet_stand_in(model: Any, config: Any) -> dict[str, str]:
        # Stands in for the fetched ImageNet file: every trunk tensor 0, statistics included.
        with torch.no_grad():
            for tensor in model.trunk.state_dict().values():
                if tensor.is_floating_point():
                    tensor.zero_()
        return {"file": "stand-in"}

    monkeypatch.setattr(loop, "_start_from_imagenet", imagenet_stand_in)
    model = build_backbone("mobilenetv2", 16, 3)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.fill_(1.0)
    config = TrainConfig(
        data_dirs=(), out_path=tmp_path / "m.onnx", backbone="mobilenetv2", weight_ensemble=0.25
    )
    loop._ensemble_with_imagenet(model, config)
    trunk = [t for t in model.trunk.state_dict().values() if t.is_floating_point()]
    head = [t for t in model.head.state_dict().values() if t.is_floating_point()]
    assert all(torch.allclose(t, torch.full_like(t, 0.25)) for t in trunk)
    assert all(torch.allclose(t, torch.ones_like(t)) for t in head)


def test_a_weight_ensemble_without_imagenet_weights_is_refused_before_training(
    labelled_set: Path, tmp_path: Path
) -> None:
    from catalog.errors import FinprintError

    # The small network has no ImageNet start: refused at once, not after the epochs.
    with pytest.raises(FinprintError, match="--weight-ensemble needs a backbone"):
        train(tiny(labelled_set, tmp_path / "m.onnx", backbone="small", weight_ensemble=0.5))
    assert not (tmp_path / "m.checkpoints").exists()


def test_head_epochs_train_the_head_alone_on_the_imagenet_trunk_then_the_trunk_too(
    labelled_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.offline.labels import read_labelled
    from catalog.train import loop
    from catalog.train.data import PhotoCache

    def imagenet_stand_in(model: Any, config: Any) -> dict[str, str]:
        # Stands in for the fetched ImageNet file; the first stages are frozen as with the real one.
        for parameter in model.frozen_prefix(config.freeze_blocks).parameters():
            parameter.requires_grad_(False)
        return {"file": "stand-in"}

    monkeypatch.setattr(loop, "_start_from_imagenet", imagenet_stand_in)
    config = tiny(labelled_set, tmp_path / "m.onnx", backbone="mobilenetv2", epochs=2, head_epochs=1)
    spec = loop._input_spec(config)
    cache = PhotoCache(read_labelled(labelled_set), spec)
    recipe = loop._Recipe.build(config, cache, spec, torch.device("cpu"))

    def snapshot(module: Any) -> dict[str, Any]:
        # Parameters and BatchNorm statistics alike.
        return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    def changed(before: dict[str, Any], module: Any) -> set[str]:
        return {k for k, v in snapshot(module).items() if not torch.equal(v, before[k])}

    frozen = {name for name, p in recipe.model.trunk.named_parameters() if not p.requires_grad}
    assert frozen, "the stand-in froze the first stages"
    trunk, head = snapshot(recipe.model.trunk), snapshot(recipe.model.head)
    recipe.run_epoch(cache, lambda loss: None, epoch=0)
    assert changed(trunk, recipe.model.trunk) == set()  # weights and statistics: ImageNet's as they were
    assert changed(head, recipe.model.head)
    trunk = snapshot(recipe.model.trunk)
    recipe.run_epoch(cache, lambda loss: None, epoch=1)
    moved = changed(trunk, recipe.model.trunk)
    assert moved and not moved & frozen  # the trunk learns now, its frozen stages still do not


def test_head_epochs_need_an_imagenet_start_and_epochs_left_for_the_trunk(
    labelled_set: Path, tmp_path: Path
) -> None:
    from catalog.errors import FinprintError

    with pytest.raises(FinprintError, match="--head-epochs 1 needs a backbone"):
        train(tiny(labelled_set, tmp_path / "m.onnx", backbone="small", head_epochs=1))
    with pytest.raises(FinprintError, match="fewer head epochs than --epochs"):
        train(tiny(labelled_set, tmp_path / "m.onnx", backbone="mobilenetv2", epochs=2, head_epochs=2))
    assert not (tmp_path / "m.checkpoints").exists()


def test_the_embedding_length_is_chosen_on_the_command_line(labelled_set: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from catalog.cli import app
    from catalog.embed import Embedder
    from catalog.preprocess import load_image, to_tensor

    out = tmp_path / "wide.onnx"
    args = ["train", str(labelled_set), "--out", str(out), "--backbone", "small", "--input-size", "32x64"]
    result = CliRunner().invoke(app, [*args, "--epochs", "1", "--embedding-dim", "24"])
    assert result.exit_code == 0, result.output
    embedder = Embedder(out)
    assert embedder.card.embedding.dim == 24
    photo = sorted(labelled_set.glob("*.jpg"))[0]
    vectors = embedder.embed(to_tensor(load_image(photo, embedder.card.input), embedder.card.input)[None])
    assert vectors.shape == (1, 24)
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-4)


def test_the_training_threshold_holds_a_set_left_to_verification_to_the_unserved_rate() -> None:
    from catalog.offline.labels import LabelledPhoto
    from catalog.train.loop import calibrate_threshold_per_set, threshold_rule_card

    rng = np.random.default_rng(2)
    photos, vectors = [], []
    # "served": 30 animals apart, each a tight pair of photos; "blurred": 30 look-alikes crowded
    # together whose photos scatter as widely as they lie apart: its own 1e-4 threshold matches
    # none of its re-sightings, and the served set's threshold would match most of its pairs.
    crowd = rng.normal(size=8) * 4
    for source, spread in (("served", 0.05), ("blurred", 0.4)):
        for animal in range(30):
            centre = rng.normal(size=8) if source == "served" else crowd + rng.normal(size=8) * 0.4
            for shot in range(2):
                photos.append(
                    LabelledPhoto(
                        Path(f"{source}{animal}{shot}.jpg"),
                        f"{source}/{animal}",
                        None,
                        None,
                        f"{source}{animal}/{shot}",
                    )
                )
                vectors.append(centre + rng.normal(size=8) * spread)
    unit = np.asarray(vectors) / np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [p.class_key(Sides.SPLIT) for p in photos]
    unbounded = TrainConfig(data_dirs=(), out_path=Path("m.onnx"), unserved_false_match_rate=1.0)
    bounded = TrainConfig(data_dirs=(), out_path=Path("m.onnx"))
    loose, _ = calibrate_threshold_per_set(unit, photos, labels, unbounded)
    threshold, points = calibrate_threshold_per_set(unit, photos, labels, bounded)
    blurred = next(p for p in points if p.name == "blurred")
    assert not blurred.decides and threshold < loose
    assert blurred.false_match_rate <= bounded.unserved_false_match_rate
    assert (
        threshold_rule_card(points, bounded)["unserved_false_match_rate"] == bounded.unserved_false_match_rate
    )
