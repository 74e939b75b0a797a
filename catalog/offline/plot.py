"""Evaluation plots drawn with matplotlib: pair accuracy against the threshold, and the ROC.

matplotlib comes with the train extra; the nightly runtime never imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.errors import FinprintError
from catalog.offline.metrics import ReidMetrics

if TYPE_CHECKING:
    from catalog.offline.evaluate import VerificationResult

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
# Below this false-accept rate a log axis only shows sampling noise of the pairs at hand.
_LOWEST_FAR = 1e-5
_METHOD_LABELS = {
    "embedding": "embedding, shortlists",
    "verification": "keypoints only, shortlists",
    "fused": "embedding + keypoints fused, shortlists",
}


def check_plot_destination(out_path: Path) -> None:
    """Refuse a plot file finprint cannot write, before minutes of evaluation are spent on it."""
    if out_path.suffix.lower() not in PLOT_SUFFIXES:
        raise FinprintError(f"{out_path}: --plot writes {', '.join(PLOT_SUFFIXES)} files; give one of those.")
    if not out_path.parent.is_dir():
        raise FinprintError(
            f"{out_path}: could not write the plot (no folder {out_path.parent}); create it or pick another."
        )


def plot_evaluation(
    metrics: ReidMetrics,
    out_path: Path,
    title: str,
    threshold: float,
    verifications: Sequence[VerificationResult] = (),
) -> None:
    """Left: same-animal, different-animal and balanced pair accuracy against the distance
    threshold, the model's threshold marked. Right: the ROC on a log false-accept axis, for the
    embedding over all pairs and, when keypoints were scored, for each way of deciding on the
    shortlists, with the operating points the decisions use. The file type follows the suffix."""
    check_plot_destination(out_path)
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise FinprintError(
            "evaluate --plot draws with matplotlib, which comes with the train extra: "
            "pip install 'finprint[train]'."
        ) from exc
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    figure.suptitle(title)
    accuracy, roc = figure.subplots(1, 2)
    table = metrics.pair_table
    accuracy.plot(table.thresholds, table.same_accuracy, label="pairs of one animal matched")
    accuracy.plot(table.thresholds, table.different_accuracy, label="pairs of two animals kept apart")
    accuracy.plot(table.thresholds, table.total_accuracy, label="balanced accuracy", linestyle="--")
    accuracy.axvline(threshold, color="black", linewidth=1)
    accuracy.annotate(
        f"model threshold {threshold:.3f}", (threshold, 0.02), xytext=(4, 0), textcoords="offset points"
    )
    accuracy.set(
        xlabel="distance threshold", ylabel="share of pairs", ylim=(0, 1.02), title="Pairs of photos"
    )
    accuracy.legend(loc="center right", fontsize="small")
    accuracy.grid(alpha=0.3)

    far, tar = metrics.roc_curve
    curve = roc.plot(
        [max(f, _LOWEST_FAR) for f in far], tar, label=f"embedding, all pairs (AUC {metrics.roc_auc:.3f})"
    )[0]
    if metrics.operating_point is not None:
        roc.plot(
            *_floored(metrics.operating_point), "o", color=curve.get_color(), label="at the model threshold"
        )
    for verification in verifications:
        for name, scores in verification.methods.items():
            if name == "embedding" and verification is not verifications[0]:
                continue  # the same shortlists' embedding ranking, drawn once
            method_far, method_tar = scores.roc_curve
            detector = "" if name == "embedding" else f" ({verification.detector})"
            line = roc.plot(
                [max(f, _LOWEST_FAR) for f in method_far],
                method_tar,
                label=f"{_METHOD_LABELS.get(name, name)}{detector} (AUC {scores.shortlist_auc:.3f})",
                linestyle=":" if name == "verification" else "-",
            )[0]
            if scores.operating_point is not None:
                roc.plot(*_floored(scores.operating_point), "s", color=line.get_color())
    roc.set_xscale("log")
    roc.set(
        xlabel="false-accept rate (pairs of two animals matched), log scale",
        ylabel="true-accept rate (pairs of one animal matched)",
        xlim=(_LOWEST_FAR, 1.0),
        ylim=(0, 1.02),
        title="ROC (markers: where the decisions sit)",
    )
    roc.legend(loc="lower right", fontsize="small")
    roc.grid(alpha=0.3, which="both")
    from matplotlib import rc_context

    try:
        # SVG keeps its words as text, so they can be searched and edited for a paper.
        with rc_context({"svg.fonttype": "none"}):
            figure.savefig(out_path, dpi=120)
    except OSError as exc:
        raise FinprintError(f"{out_path}: could not write the plot ({exc.strerror or exc}).") from exc


def _floored(point: tuple[float, float]) -> tuple[float, float]:
    return max(point[0], _LOWEST_FAR), point[1]
