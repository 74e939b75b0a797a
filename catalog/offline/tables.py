"""Rich tables of scores: a catalogue against the truth, re-identification, verification side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table

from catalog.offline.metrics import ClusteringScores, ReidMetrics

if TYPE_CHECKING:
    from catalog.offline.evaluate import VerificationResult


def clustering_table(scores: ClusteringScores, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("pairwise precision", f"{scores.pairwise_precision:.3f} of {scores.found_pairs} pairs")
    table.add_row("pairwise recall", f"{scores.pairwise_recall:.3f}")
    table.add_row("pairwise F1", f"{scores.pairwise_f1:.3f}")
    table.add_row("B-cubed F1", f"{scores.bcubed_f1:.3f}")
    table.add_row("true individuals (flank, crop)", str(scores.true_individuals))
    table.add_row("individuals found", str(scores.found_individuals))
    table.add_row("found individuals mixing two animals", str(scores.wrong_merges))
    return table


def reid_table(metrics: ReidMetrics, title: str) -> RenderableType:
    summary = Table(title=title, title_justify="left")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for label, value in (
        ("ROC AUC", metrics.roc_auc),
        ("rank-1", metrics.rank1),
        ("rank-5", metrics.rank5),
        ("mAP", metrics.mean_average_precision),
        ("TAR at FAR 1%", metrics.tar_at_far_1pct),
        ("TAR at FAR 0.1%", metrics.tar_at_far_01pct),
        ("best balanced pair accuracy", metrics.best_balanced_accuracy),
        ("  at distance", metrics.best_balanced_threshold),
    ):
        summary.add_row(label, f"{value:.3f}")
    summary.add_row("queries / individuals", f"{metrics.n_queries} / {metrics.n_individuals}")
    seed = Table(title="Seed-study table (balanced pairs)", title_justify="left")
    for column in ("threshold", "same fish", "different fish", "total"):
        seed.add_column(column, justify="right")
    table = metrics.pair_table
    for t, s, d, total in zip(
        table.thresholds,
        table.same_accuracy,
        table.different_accuracy,
        table.total_accuracy,
        strict=True,
    ):
        seed.add_row(f"{t:.1f}", f"{s:.3f}", f"{d:.3f}", f"{total:.3f}")
    return Group(summary, seed)


def verification_table(result: VerificationResult) -> RenderableType:
    """Embedding-only, keypoints-only and fused rankings side by side."""
    table = Table(
        title=f"Shortlist of {result.shortlist_k} verified by keypoints "
        f"(+{result.describe_ms_per_photo:.0f} ms to describe a photo, "
        f"+{result.match_ms_per_query:.0f} ms to match its shortlist)",
        title_justify="left",
    )
    table.add_column("metric")
    names = list(result.methods)
    for name in names:
        table.add_column(name, justify="right")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows: list[tuple[str, list[str]]] = [
        ("rank-1", [cell(result.methods[n].rank1) for n in names]),
        ("mAP", [cell(result.methods[n].mean_average_precision) for n in names]),
        ("ROC AUC on shortlist pairs", [cell(result.methods[n].shortlist_auc) for n in names]),
        ("precision at the threshold", [cell(result.methods[n].precision_at_threshold) for n in names]),
        ("pairs accepted", [str(result.methods[n].accepted_pairs or "-") for n in names]),
    ]
    for label, values in rows:
        table.add_row(label, *values)
    if not result.fusion_fitted:
        table.caption = "No fused column: this model has no .verify.json (finprint fit-verification)."
    return table
