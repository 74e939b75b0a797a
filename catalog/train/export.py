"""Export a trained network to ONNX with its model card, and prove onnxruntime agrees with torch."""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from catalog.errors import FinprintError
from catalog.modelcard import CARD_KEY, INPUT_NAME, OUTPUT_NAME, EmbeddingSpec, InputSpec, ModelCard
from catalog.offline.labels import LabelledPhoto
from catalog.vocabulary import Sides

PARITY_TOLERANCE = 1e-4


def weights_version(model: nn.Module) -> str:
    """sha256 over the weights in a fixed order, first 12 hex digits (the card's model_version)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def trained_card(
    model: nn.Module,
    *,
    spec: InputSpec,
    embedding: EmbeddingSpec,
    sides: Sides,
    threshold: float,
    learnt_from: TrainedOn,
    extra: dict[str, Any],
) -> ModelCard:
    """The card of a network that training (from labelled folders or a catalogue) just finished:
    its version from its weights, its threshold as the card keeps it, and what it learnt from."""
    return ModelCard(
        input=spec,
        embedding=embedding,
        threshold=round(threshold, 4),
        sides=sides,
        model_version=weights_version(model),
        trained_on=learnt_from.card_entry(),
        extra=extra,
    )


@dataclass(frozen=True)
class TrainedOn:
    """What every trained card says of its training; `details` adds what one kind of training
    knows (a catalogue's decisions, the ImageNet start, the validation scores)."""

    dataset: str
    photos: list[LabelledPhoto]
    recipe: str
    backbone: str
    epochs: int
    seed: int
    details: dict[str, Any] = field(default_factory=dict)

    def card_entry(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "individuals": len({p.individual for p in self.photos}),
            "images": len(self.photos),
            "recipe": self.recipe,
            "backbone": self.backbone,
            "epochs": self.epochs,
            "seed": self.seed,
            **self.details,
        }


def export_onnx(model: nn.Module, card: ModelCard, out_path: Path) -> float:
    """Write `out_path` with the card in its metadata; returns the parity check's max difference."""
    model = model.eval().cpu()
    spec = card.input
    proto = traced_onnx(
        model,
        (torch.randn(2, spec.channels, spec.height, spec.width),),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )
    save_with_card(proto, CARD_KEY, card.to_json(), out_path)
    return _parity(model, card, out_path)


def traced_onnx(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> Any:
    """`model` traced to an ONNX graph (opset 17, TorchScript exporter), returned unsaved."""
    import onnx

    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.onnx"
        with warnings.catch_warnings():
            # The TorchScript exporter's notes on constant folding are not actionable for a user.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
            # The TorchScript exporter is the one whose output the model card's contract was
            # checked against; its deprecation notice is for torch's maintainers, not for a user.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # Python-side checks the trace fixes as constants: EfficientNet-Lite's "SAME" padding
            # (from the input size, which the card fixes too) and InstanceNorm's channel count
            # (XFeat's one grey channel; its height and width stay dynamic, its parity check runs
            # two shapes).
            warnings.filterwarnings("ignore", message=r"Converting a tensor to a Python")
            torch.onnx.export(
                model,
                inputs,
                str(raw),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=17,
                dynamo=False,
            )
        return onnx.load(str(raw))


def save_with_card(proto: Any, key: str, card_json: str, out_path: Path) -> None:
    """Put a card into the graph's metadata under `key`, check the graph, and save it."""
    import onnx

    entry = proto.metadata_props.add()
    entry.key = key
    entry.value = card_json
    onnx.checker.check_model(proto)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))


def onnx_difference(model: nn.Module, card: ModelCard, onnx_path: Path) -> tuple[float, float]:
    """The max difference between torch and onnxruntime on a fixed random batch, and the
    largest output value (the scale a tolerance is relative to)."""
    import onnxruntime as ort

    spec = card.input
    probe = torch.randn(5, spec.channels, spec.height, spec.width, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        expected = model(probe).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: probe.numpy()})
    return float(np.max(np.abs(expected - actual))), float(np.max(np.abs(expected)))


def _parity(model: nn.Module, card: ModelCard, out_path: Path) -> float:
    """Max difference between torch and onnxruntime on a fixed random batch; fails loudly."""
    difference, largest = onnx_difference(model, card, out_path)
    # 1e-4 is absolute for unit vectors; an unnormalised output (the seed recipe's) is held to
    # the same relative precision, since float32 rounding grows with the values' size.
    return kept_if_close(out_path, difference, PARITY_TOLERANCE * max(1.0, largest), "the backbone used")


def kept_if_close(out_path: Path, difference: float, tolerance: float, report_with: str) -> float:
    """An exported file whose onnxruntime outputs are further than `tolerance` from torch's is
    removed, loudly; returns `difference` otherwise."""
    if not difference <= tolerance:
        out_path.unlink(missing_ok=True)
        raise FinprintError(
            f"{out_path}: ONNX export disagrees with torch (max difference {difference:.2e} > "
            f"{tolerance:.1e}); the file was removed. Report this with {report_with}."
        )
    return difference
