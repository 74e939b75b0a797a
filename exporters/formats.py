"""One entry point for every export format, so the command line stays one thin command."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

from catalog.store import Store
from exporters.capture_history import export_capture_history
from exporters.darwin_core import DatasetMetadata, export_darwin_core
from exporters.geojson import export_geojson
from exporters.selection import ExportFilter
from exporters.tabular import export_csv, export_json, export_parquet


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"
    DWC = "dwc"
    CAPTURE_HISTORY = "capture-history"
    GEOJSON = "geojson"


def export(
    store: Store,
    export_format: ExportFormat,
    out_path: Path,
    selection: ExportFilter,
    dataset: DatasetMetadata,
    *,
    occasion_starts: list[date] | None = None,
    group_by_site: bool = False,
    spreadsheet_safe: bool = False,
) -> str:
    """Write one export; returns a sentence saying what was written (and, when filters left
    nothing, which: a misspelt site otherwise gives an empty file that looks like no sightings)."""
    count, sentence = _write(
        store,
        export_format,
        out_path,
        selection,
        dataset,
        occasion_starts=occasion_starts,
        group_by_site=group_by_site,
        spreadsheet_safe=spreadsheet_safe,
    )
    if count == 0 and selection.described():
        sentence += (
            f". Nothing matched {selection.described()}: check the spelling against "
            "`finprint query sightings_by_site` or `finprint individuals`"
        )
    return sentence


def _write(
    store: Store,
    export_format: ExportFormat,
    out_path: Path,
    selection: ExportFilter,
    dataset: DatasetMetadata,
    *,
    occasion_starts: list[date] | None,
    group_by_site: bool,
    spreadsheet_safe: bool,
) -> tuple[int, str]:
    if export_format is ExportFormat.CSV:
        count = export_csv(store, out_path, selection, spreadsheet_safe)
        return count, f"Wrote {count} rows to {out_path}"
    if export_format is ExportFormat.JSON:
        count = export_json(store, out_path, selection)
        return count, f"Wrote {count} rows to {out_path}"
    if export_format is ExportFormat.PARQUET:
        count = export_parquet(store, out_path, selection)
        return count, f"Wrote {count} rows to {out_path}"
    if export_format is ExportFormat.DWC:
        count = export_darwin_core(store, out_path, dataset, selection, spreadsheet_safe)
        return count, f"Wrote {count} occurrences to {out_path}"
    if export_format is ExportFormat.CAPTURE_HISTORY:
        histories = export_capture_history(
            store,
            out_path,
            selection,
            occasion_starts=occasion_starts,
            group_by_site=group_by_site,
            spreadsheet_safe=spreadsheet_safe,
        )
        count = len(histories.histories)
        undated = histories.undated_sightings
        left_out = (
            f" ({undated} sighting(s) without a survey date left out: give their folders a date, or "
            "path_pattern a {date} field, and export again)"
            if undated
            else ""
        )
        return count, f"Wrote capture histories of {count} individuals to {out_path}{left_out}"
    written, without_gps = export_geojson(store, out_path, selection)
    left_out = f" ({without_gps} sightings without GPS left out)" if without_gps else ""
    return written, f"Wrote {written} points to {out_path}{left_out}"
