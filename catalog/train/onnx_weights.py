"""Read an exported model's weights back into its torch network, to fine-tune a catalogue's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from catalog.errors import FinprintError
from catalog.modelcard import ModelCard
from catalog.train.export import onnx_difference

# onnxruntime and torch agree to about 1e-6 on unit vectors; a wrong mapping is off by ~0.1.
READBACK_TOLERANCE = 1e-3


def _conv_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Each convolution with the BatchNorm that follows it, in the order the forward pass runs
    them (the order the networks register them in)."""
    modules = list(model.modules())
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    for i, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            following = modules[i + 1] if i + 1 < len(modules) else None
            pairs.append((module, following if isinstance(following, nn.BatchNorm2d) else None))
    return pairs


def load_exported_weights(model: nn.Module, onnx_path: Path, card: ModelCard, backbone: str) -> None:
    """Load `onnx_path`'s weights into `model` (built as `backbone`), so that the torch network
    computes what onnxruntime computes, or raise.

    The exporter folds each BatchNorm into the convolution before it. The folded weights go into
    the convolution, and the BatchNorm becomes the identity plus the folded bias (mean 0, variance
    1 - eps, scale 1): exact in eval mode, which is how fine-tuning from an exported model keeps
    its BatchNorms (its statistics are gone; small catalogue batches would give poor ones)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path))
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    pairs = _conv_pairs(model)
    mismatch = FinprintError(
        f"{onnx_path}: its weights do not fit the {backbone} network its card names; it cannot be "
        "fine-tuned. Train from labelled folders instead (finprint train DATA)."
    )
    if len(convs) != len(pairs):
        raise mismatch
    loaded: set[int] = set()
    with torch.no_grad():
        for node, (conv, norm) in zip(convs, pairs, strict=True):
            kernel = weights.get(node.input[1])
            bias = weights.get(node.input[2]) if len(node.input) > 2 else None
            if kernel is None or tuple(kernel.shape) != tuple(conv.weight.shape):
                raise mismatch
            conv.weight.copy_(torch.from_numpy(np.array(kernel)))
            loaded.add(id(conv.weight))
            folded = torch.from_numpy(bias.copy()) if bias is not None else torch.zeros(conv.out_channels)
            if norm is not None:
                norm.weight.fill_(1.0)
                norm.bias.copy_(folded)
                norm.running_mean.zero_()  # type: ignore[union-attr]
                norm.running_var.fill_(1.0 - norm.eps)  # type: ignore[union-attr]
                loaded.update({id(norm.weight), id(norm.bias)})
            elif conv.bias is not None:
                conv.bias.copy_(folded)
                loaded.add(id(conv.bias))
        for name, tensor in model.state_dict(keep_vars=True).items():
            if name in weights and id(tensor) not in loaded:
                if tuple(weights[name].shape) != tuple(tensor.shape):
                    raise mismatch
                tensor.data.copy_(torch.from_numpy(np.array(weights[name])))
    if not onnx_difference(model, card, onnx_path)[0] <= READBACK_TOLERANCE:
        raise mismatch


def freeze_batchnorm(model: nn.Module) -> None:
    """Every BatchNorm in eval mode (call after model.train()): their folded statistics stay."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
