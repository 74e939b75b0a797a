"""Rich tables of scores: a catalogue against the truth, re-identification, verification side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table

from catalog.offline.metrics import ClusteringScores, ReidMetrics

if TYPE_CHECKING:
    from catalog.offline.evaluate import VerificationResult
    from catalog.offline.shortlist import MethodScores


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


def reid_table(metrics: ReidMetrics, title: str, seed_table: bool = True) -> RenderableType:
    """Retrieval and pair figures with their intervals, then (with `seed_table`) the seed study's
    accuracy at fixed distances, which mean nothing on another scale than the model's."""
    summary = Table(title=title, title_justify="left")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    # A few animals' photos are not independent queries: the interval says how far one
    # identity more or less could move the figure.
    summary.add_column("95% interval, identities resampled", justify="right")
    intervals = {"rank-1": metrics.rank1_interval, "mAP": metrics.map_interval}
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
        interval = intervals.get(label)
        summary.add_row(label, f"{value:.3f}", f"{interval[0]:.3f} to {interval[1]:.3f}" if interval else "")
    summary.add_row("queries / individuals", f"{metrics.n_queries} / {metrics.n_individuals}")
    if not seed_table:
        return summary
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


def verification_table(results: list[VerificationResult]) -> RenderableType:
    """Embedding-only, then keypoints-only and fused rankings of each detector, side by side."""
    costs = "; ".join(
        f"{r.detector} +{r.describe_ms_per_photo:.0f} ms to describe a photo, "
        f"+{r.match_ms_per_query:.0f} ms to match its shortlist"
        for r in results
    )
    table = Table(
        title=f"Shortlist of {results[0].shortlist_k} verified by keypoints ({costs})", title_justify="left"
    )
    table.add_column("metric")
    columns: dict[str, MethodScores] = {"embedding": results[0].methods["embedding"]}
    for result in results:
        for name, scores in result.methods.items():
            if name != "embedding":
                columns[f"{result.detector} {'keypoints' if name == 'verification' else name}"] = scores
    for name in columns:
        table.add_column(name, justify="right")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows: list[tuple[str, list[str]]] = [
        ("rank-1", [cell(s.rank1) for s in columns.values()]),
        ("mAP", [cell(s.mean_average_precision) for s in columns.values()]),
        ("ROC AUC on shortlist pairs", [cell(s.shortlist_auc) for s in columns.values()]),
        ("precision at the threshold", [cell(s.precision_at_threshold) for s in columns.values()]),
        ("pairs accepted", [str(s.accepted_pairs or "-") for s in columns.values()]),
    ]
    for label, values in rows:
        table.add_row(label, *values)
    unfitted = [r.detector for r in results if not r.fusion_fitted]
    if unfitted:
        table.caption = (
            f"No fused column for {', '.join(unfitted)}: this model has no fusion fitted for it "
            "(finprint fit-verification --detector NAME)."
        )
    return table
