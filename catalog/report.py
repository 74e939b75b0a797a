"""Rich renderables for runs, histories and query results, built from plain data (what a night prints)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from catalog.night.outcome import ReindexResult
from catalog.store import QueryResult
from catalog.vocabulary import CAUTION_WORDS, Caution, DecisionAction

MAX_LISTED = 12


def format_value(value: Any) -> str:
    """How a value reads in a report, terminal or HTML: dates to the minute, distances to 3 places."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def short_path(path: str | None) -> str:
    """Survey folder and file name: enough to find a photo in a terminal-width table."""
    return "-" if path is None else "/".join(Path(path).parts[-2:])


# Columns holding ids a person copies into the next command: never broken across lines.
_Rows = list[dict[str, Any]]
_ID_COLUMNS = {"photo", "now_in", "proposed", "individual"}


def query_table(result: QueryResult, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for column in result.columns:
        whole = column in _ID_COLUMNS or column.endswith("_id")
        table.add_column(column, overflow="fold", no_wrap=whole, min_width=8 if whole else None)
    for row in result.rows:
        table.add_row(*(Text(format_value(v)) for v in row))
    return table


def run_report(summary: QueryResult, sightings: QueryResult, errors: QueryResult) -> RenderableType:
    """The report of one index run: counts, new individuals, re-sightings, review queue, errors."""
    if not summary.rows:
        return Text("No such run.")
    run = summary.records()[0]
    rows = sightings.records()
    new = [r for r in rows if r["status"] == "new"]
    matched = [r for r in rows if r["status"] == "matched"]
    review = [r for r in rows if r["status"] == "review"]
    total_seconds = 0.0
    if run["finished_at"] is not None:
        total_seconds = (run["finished_at"] - run["started_at"]).total_seconds()
    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column()
    overview.add_row("Run", f"{run['run_id']} ({run['status']}), model {run['model_version']}")
    overview.add_row("Decided by", rule_of_run(run))
    overview.add_row(
        "Files",
        f"{format_value(run['files_seen'])} seen, {format_value(run['photos_new'])} new photos catalogued, "
        f"{format_value(run['photos_failed'])} unreadable",
    )
    overview.add_row("Individuals", _counts_text(run, new, matched, review))
    if new:
        # A new individual is where an animal the model was unsure of gets split off.
        overview.add_row("", "finprint lookalikes: the catalogued individuals each new one looks most like")
    if total_seconds > 0 and run["photos_new"]:
        rate = run["photos_new"] / total_seconds
        overview.add_row(
            "Time",
            f"{total_seconds:.1f} s ({rate:.1f} photos/s; decode {run['seconds_decode']:.1f} s "
            f"across workers, embed {run['seconds_embed']:.1f} s, write {run['seconds_write']:.1f} s)",
        )
    parts: list[RenderableType] = [overview]
    if matched:
        parts.append(_sighting_table("Re-sightings", matched))
    if review:
        parts.append(_sighting_table("To review (near the threshold, or close to two individuals)", review))
    if errors.rows:
        table = Table(title="Photos that could not be read", title_justify="left")
        table.add_column("path", overflow="fold")
        table.add_column("reason", overflow="fold")
        for path, reason in errors.rows[:MAX_LISTED]:
            table.add_row(Text(path), Text(reason))
        if len(errors.rows) > MAX_LISTED:
            table.add_row(Text(f"... and {len(errors.rows) - MAX_LISTED} more"), "")
        parts.append(table)
    return Panel(Group(*parts), title="finprint index run", title_align="left")


def rule_of_run(run: dict[str, Any]) -> str:
    """The rule a run decided by, as it recorded it (runs before that: its distance threshold)."""
    rule = run.get("decision_rule")
    return str(rule) if rule else f"a distance under {run['distance_threshold']:.3f} (embedding alone)."


def decided_by(row: dict[str, Any]) -> str:
    """What decided one sighting: a person, tonight's group, keypoints with the distance, or the
    distance alone."""
    action = row.get("decision_action")
    if action == DecisionAction.GROUP:
        return "tonight's group"
    if action:
        return f"a person ({action})"
    caution = row.get("caution")
    if caution in CAUTION_WORDS:
        return CAUTION_WORDS[Caution(caution)]
    return "distance + keypoints" if row.get("inliers") is not None else "distance"


def decided_distance(row: dict[str, Any]) -> float | None:
    """The distance the threshold was applied to: the decision's own where stored, else the
    distance to the matched photo (rows written before the two were kept apart)."""
    decided = row.get("decision_distance")
    value = row["distance"] if decided is None else decided
    return None if value is None else float(value)


def linkage_distance(row: dict[str, Any]) -> float | None:
    """The mean distance a match to a fish first seen in the same run was decided on, where it
    differs from the distance to the matched photo (the reports show both); else None."""
    decided = row.get("decision_distance")
    if decided is None or row["distance"] is None or abs(decided - row["distance"]) <= 5e-4:
        return None
    return float(decided)


def _counts_text(run: dict[str, Any], new: _Rows, matched: _Rows, review: _Rows) -> str:
    """The run's counts as its log line and --json gave them (kept with the run); a run finished
    before they were kept is counted from its sightings as they are now."""
    if run.get("photos_matched") is not None:
        individuals_new, photos_matched = run["individuals_new"], run["photos_matched"]
        individuals_resighted, photos_review = run["individuals_resighted"], run["photos_review"]
    else:
        individuals_new, photos_matched = len({r["individual_id"] for r in new}), len(matched)
        individuals_resighted, photos_review = len({r["individual_id"] for r in matched}), len(review)
    return (
        f"{individuals_new} new, {photos_matched} re-sighting(s) of {individuals_resighted} individual(s), "
        f"{photos_review} photo(s) to review"
    )


def _distance_text(row: dict[str, Any]) -> str:
    """The distance to the matched photo, and the decision's mean distance when it differs."""
    linkage = linkage_distance(row)
    return format_value(row["distance"]) + ("" if linkage is None else f" (mean {format_value(linkage)})")


def _sighting_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("individual")
    # Distance to the photo in the last column; "mean" when the decision was on the mean distance
    # to a fish first seen in the same run (average linkage).
    table.add_column("distance to it", justify="right")
    table.add_column("P(same)", justify="right")
    table.add_column("keypoints", justify="right")
    table.add_column("decided by")
    table.add_column("photo", overflow="fold")
    table.add_column("best earlier photo", overflow="fold")
    for row in rows[:MAX_LISTED]:
        who = row["individual_id"]
        if row.get("second_individual_id"):
            who = f"{who} or {row['second_individual_id']}"
        table.add_row(
            Text(who),
            _distance_text(row),
            "-" if row.get("probability") is None else f"{row['probability']:.2f}",
            "-" if row.get("inliers") is None else str(row["inliers"]),
            decided_by(row),
            Text(short_path(row["path"])),
            Text(short_path(row["matched_path"])),
        )
    if len(rows) > MAX_LISTED:
        table.add_row(f"... and {len(rows) - MAX_LISTED} more", "", "", "", "", "", "")
    return table


def history_report(individual: QueryResult, history: QueryResult) -> RenderableType:
    """One individual's life history: summary line and timeline."""
    info = individual.records()[0]
    name = f" ({info['name']})" if info.get("name") else ""
    flank = " ".join(v for v in (info.get("side"), info.get("crop")) if v)
    if info.get("linked"):
        flank += f" (linked: {', '.join(info['linked'])})"
    header = Text.assemble(
        (f"{info['individual_id']}{name}", "bold"),
        f"  {flank}  " if flank else "  ",
        f"{info['sightings']} sighting(s), first {format_value(info['first_seen'])}, "
        f"last {format_value(info['last_seen'])}, "
        f"sites: {format_value(info['sites']) or '-'}",
    )
    timeline = Table(title="Timeline", title_justify="left")
    for column in ("date", "site", "camera", "side", "photo", "distance", "decision"):
        timeline.add_column(column, overflow="fold", justify="right" if column == "distance" else "left")
    for record in history.records():
        timeline.add_row(
            # The camera's time, or the survey's date where the photo has none.
            format_value(record["taken_at"] if record["taken_at"] is not None else record["survey_date"]),
            Text(format_value(record["site"])),
            Text(format_value(record["camera"])),
            format_value(record["side"]),
            Text(short_path(record["path"])),
            format_value(record["distance"]),
            record["status"],
        )
    return Group(header, timeline)


def fit_figures_table(fitted_on: dict[str, Any], keypoint_reach: float | None) -> Table:
    """What a fitted verification does to each fitting set's shortlist pairs: same-animal and
    different-animal pairs accepted by the embedding alone, by the fused score without the reach,
    and as identification decides (within the reach)."""
    reach = "-" if keypoint_reach is None else f"{keypoint_reach:.3f}"
    table = Table(title=f"Per fitting set; the keypoints' reach {reach}", title_justify="left")
    table.add_column("set", no_wrap=True)
    table.add_column("same-animal pairs joined: embedding / fused, no reach / fused", justify="right")
    table.add_column("99% within", justify="right")
    table.add_column("different pairs joined", justify="right")
    for name, row in fitted_on.get("per_set", {}).items():
        table.add_row(
            Text(name),
            f"{row['same_accepted_by_embedding']} / {row['same_accepted_fused_without_reach']} / "
            f"{row['same_accepted_fused']} of {row['same_pairs']}",
            format_value(row.get("same_pairs_reach_q99")),
            f"{row['different_accepted_by_embedding']} / {row['different_accepted_fused_without_reach']} / "
            f"{row['different_accepted_fused']} of {row['different_pairs']}",
        )
    return table


def reindex_summary(result: ReindexResult) -> str:
    """What a reindex did: photos re-embedded and described, embeddings dropped, photos left out."""
    described = (
        f" Described {result.photos_described} photo(s) that lacked {result.detector} keypoints."
        if result.photos_described
        else ""
    )
    example = result.errors[0].path if result.errors else "a photo whose file is gone"
    left_out = (
        f" {result.photos_left_out} photo(s) could not be read and are left out of identification"
        f" (e.g. {example})."
        if result.photos_left_out
        else ""
    )
    return (
        f"Re-embedded {result.photos_embedded} photo(s) with model {result.model_version}; "
        f"dropped {result.embeddings_dropped} embedding(s) of the old model.{described}{left_out}"
    )


def named_queries_table(named: dict[str, tuple[str, list[str]]]) -> Table:
    """The named queries (sql/queries/*.sql) with what each answers and its parameters."""
    table = Table(title="Named queries: finprint query NAME --param key=value")
    for column in ("name", "answers", "parameters"):
        table.add_column(column, overflow="fold")
    for name, (description, parameters) in named.items():
        table.add_row(name, description, ", ".join(parameters) or "-")
    return table
