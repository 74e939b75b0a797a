"""What scoring and training say: tables of scores (a catalogue against the truth, re-identification,
verification side by side) and the summaries of evaluate, train and fit-verification."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table

from catalog.offline.metrics import ClusteringScores, ReidMetrics

if TYPE_CHECKING:
    from pathlib import Path

    from catalog.offline.evaluate import Evaluation, VerificationResult
    from catalog.offline.shortlist import MethodScores
    from catalog.offline.verify_fit import FitResult
    from catalog.train.from_catalogue import CatalogueTrainConfig, CatalogueTrainResult
    from catalog.train.loop import TrainResult


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


def evaluation_report(result: Evaluation, source: str) -> RenderableType:
    """What `finprint evaluate` says of one model on one labelled set, tables and sentences."""
    parts: list[RenderableType] = [
        reid_table(result.metrics, f"Model {result.model_version} on {source} ({result.photos} photos)")
    ]
    if result.reranked is not None:
        parts.append(
            reid_table(result.reranked, "The same photos ranked by re-ranked distances", seed_table=False)
        )
    if result.verifications:
        parts.append(verification_table(result.verifications))
    if result.open_set is not None:
        scores = result.open_set
        parts.append(
            f"Open set at the card's threshold {result.card_threshold}: "
            f"BAKS {scores.known_balanced_accuracy:.3f} ({scores.known_queries} photos of known fish), "
            f"BAUS {scores.unknown_balanced_accuracy:.3f} ({scores.unknown_queries} photos of new fish)."
        )
    if result.probability_at_threshold is not None:
        parts.append(
            f"At the card's threshold {result.card_threshold}: P(same fish) "
            f"{result.probability_at_threshold:.3f} (calibrated on the model's validation pairs, "
            "half same-fish, half different)."
        )
    if result.unreadable:
        parts.append(
            f"[yellow]{len(result.unreadable)} unreadable photo(s) skipped, e.g. {result.unreadable[0]}"
        )
    return Group(*parts)


def training_summary(result: TrainResult, out: Path) -> RenderableType:
    """What `finprint train` says of the model it wrote."""
    wrote = (
        f"Wrote {out} (model {result.card.model_version}, threshold {result.card.threshold}, "
        f"ONNX parity {result.parity_difference:.1e}, {result.seconds:.0f} s)"
    )
    if result.validation is None:
        return wrote
    title = (
        "Validation individuals (the calibration network's figures: it never saw them; the network "
        "shipped learnt them too)"
        if result.final_fit
        else "Validation individuals (never seen in training)"
    )
    return Group(wrote, reid_table(result.validation, title))


def fine_tuning_summary(result: CatalogueTrainResult, config: CatalogueTrainConfig) -> str:
    """How the model fine-tuned from a catalogue compares with the one it started from."""
    current, new = result.current, result.new
    gain, low, high = result.gain
    carried = "carried over." if result.fusion_carried else "needs `finprint fit-verification` for it."
    return (
        f"On {result.validation_individuals} catalogue individuals held out of training: mAP "
        f"{current.mean_average_precision:.3f} -> {new.mean_average_precision:.3f} (gain {gain:+.3f}, "
        f"95% interval {low:+.3f} to {high:+.3f} over those individuals), rank-1 "
        f"{current.rank1:.3f} -> {new.rank1:.3f} "
        f"(model {config.model_path.name} -> {config.out_path.name}).\n"
        f"Wrote {config.out_path} (model {result.card.model_version}, threshold {result.card.threshold}, "
        f"{result.seconds:.0f} s); keypoint verification {carried}"
    )


def fine_tuning_verdict(result: CatalogueTrainResult, config: CatalogueTrainConfig) -> str:
    """What to do with the fine-tuned model: reindex with it, or keep the current one and why."""
    if result.better:
        reindex = f"finprint reindex --db {config.catalogue} --model {config.out_path}"
        return f"Use it: {reindex}, then index as usual."
    within_chance = (
        f" (its gain is within chance on {result.validation_individuals} individuals)"
        if result.gain[0] > 0
        else ""
    )
    return (
        f"The new model is not better than {config.model_path.name} on the held-out individuals"
        f"{within_chance}: keep using the current one (more confirmed re-sightings let it be "
        "judged on more individuals; more epochs may help)."
    )


def fit_summary(result: FitResult) -> str:
    """What `finprint fit-verification` wrote, and what it does on the pairs it was fitted on."""
    fitted = result.fusion.fitted_on
    return (
        f"Wrote {result.path} from {result.photos} photos of {result.individuals} identities: "
        f"P(same) threshold {result.fusion.threshold_probability:.3f}; on the fitting pairs the "
        f"embedding alone accepts {fitted['same_pairs_accepted_by_embedding']} of {fitted['same_pairs']} "
        f"same-fish and {fitted['different_pairs_accepted_by_embedding']} different-fish pairs, fused "
        f"{fitted['same_pairs_accepted_fused']} and {fitted['different_pairs_accepted_fused']}."
    )
