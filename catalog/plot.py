"""Evaluation plots as a PNG drawn with Pillow: the seed study's accuracy curves and the ROC."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from catalog.metrics import ReidMetrics

_PANEL = 420
_MARGIN = 50
_COLOURS = {"same fish": (31, 119, 180), "different fish": (214, 39, 40), "total": (44, 160, 44)}


def _panel(
    draw: ImageDraw.ImageDraw,
    left: int,
    title: str,
    x_label: str,
    x_range: tuple[float, float],
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
) -> None:
    top = _MARGIN
    draw.rectangle([left, top, left + _PANEL, top + _PANEL], outline=(0, 0, 0))
    for step in range(1, 5):
        y = top + _PANEL * step / 5
        draw.line([left, y, left + _PANEL, y], fill=(225, 225, 225))
        draw.text((left - 30, y - 6), f"{1 - step / 5:.1f}", fill=(0, 0, 0))
    draw.text((left, top - 30), title, fill=(0, 0, 0))
    draw.text((left + _PANEL / 2 - 30, top + _PANEL + 22), x_label, fill=(0, 0, 0))
    draw.text((left, top + _PANEL + 6), f"{x_range[0]:.1f}", fill=(0, 0, 0))
    draw.text((left + _PANEL - 20, top + _PANEL + 6), f"{x_range[1]:.1f}", fill=(0, 0, 0))
    span = (x_range[1] - x_range[0]) or 1.0
    for row, (name, (xs, ys)) in enumerate(series.items()):
        colour = _COLOURS.get(name, (0, 0, 0))
        points = [
            (left + _PANEL * (x - x_range[0]) / span, top + _PANEL * (1 - y))
            for x, y in zip(xs, ys, strict=True)
        ]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        draw.text((left + _PANEL - 110, top + _PANEL - 70 + 16 * row), name, fill=colour)


def plot_evaluation(metrics: ReidMetrics, out_path: Path, title: str) -> None:
    """Left: same-fish, different-fish and total pair accuracy against the distance threshold.
    Right: true-accept against false-accept rate (ROC), with its area."""
    image = Image.new("RGB", (3 * _MARGIN + 2 * _PANEL + 20, 2 * _MARGIN + _PANEL + 40), "white")
    draw = ImageDraw.Draw(image)
    draw.text((_MARGIN, 8), title, fill=(0, 0, 0))
    table = metrics.pair_table
    thresholds = table.thresholds
    _panel(
        draw,
        _MARGIN,
        "pair accuracy (balanced pairs)",
        "distance threshold",
        (thresholds[0], thresholds[-1]),
        {
            "same fish": (thresholds, table.same_accuracy),
            "different fish": (thresholds, table.different_accuracy),
            "total": (thresholds, table.total_accuracy),
        },
    )
    far, tar = metrics.roc_curve
    _panel(
        draw,
        2 * _MARGIN + _PANEL + 20,
        f"ROC (AUC {metrics.roc_auc:.3f})",
        "false-accept rate",
        (0.0, 1.0),
        {"same fish": (far, tar)},
    )
    image.save(out_path, format="PNG")
