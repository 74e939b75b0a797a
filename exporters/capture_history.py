"""Capture histories for mark-recapture programs: MARK .inp files and RMark-ready CSV."""

from __future__ import annotations

import bisect
import csv
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from catalog.errors import FinprintError
from catalog.store import Store
from exporters.cells import inert
from exporters.selection import ExportFilter, sighting_rows
from exporters.tabular import write_atomically


@dataclass(frozen=True)
class CaptureHistories:
    """Who was seen on which occasion."""

    occasions: list[date]  # the start date of each occasion
    # animal -> "0101": catalogue entries a person linked as one fish (its two flanks) are one
    # animal, or MARK would count a fish photographed on both sides twice.
    histories: dict[str, str]
    groups: dict[str, str]  # animal -> group (site of first sighting), when grouped
    # Sightings left out for want of a survey date (no dated folder, no {date} in the pattern).
    undated_sightings: int = 0


def build_histories(
    rows: list[dict[str, Any]], occasion_starts: list[date] | None = None, group_by_site: bool = False
) -> CaptureHistories:
    """Occasions are the survey dates, or bins starting at `occasion_starts`."""
    dated = [r for r in rows if r["survey_date"] is not None]
    if not dated:
        raise FinprintError("no dated sightings to build capture histories from. Check the filters.")
    occasions = sorted(set(occasion_starts or [r["survey_date"] for r in dated]))
    seen: dict[str, set[int]] = {}
    groups: dict[str, str] = {}
    for row in dated:
        slot = bisect.bisect_right(occasions, row["survey_date"]) - 1
        if slot < 0:
            continue  # before the first occasion the user gave
        seen.setdefault(row["animal_id"], set()).add(slot)
        if group_by_site:
            groups.setdefault(row["animal_id"], row["site"] or "unknown")
    histories = {
        individual: "".join("1" if i in slots else "0" for i in range(len(occasions)))
        for individual, slots in sorted(seen.items())
    }
    return CaptureHistories(occasions, histories, groups, len(rows) - len(dated))


def mark_inp(histories: CaptureHistories) -> str:
    """MARK input: `/* FP-000123 */ 0101 1;`, one frequency column per group when grouped."""
    group_names = sorted(set(histories.groups.values()))
    lines = [f"/* occasions: {', '.join(d.isoformat() for d in histories.occasions)} */"]
    if group_names:
        lines.append(f"/* groups: {', '.join(group_names)} */")
    for individual, history in histories.histories.items():
        if group_names:
            counts = " ".join("1" if histories.groups[individual] == g else "0" for g in group_names)
        else:
            counts = "1"
        lines.append(f"/* {individual} */ {history} {counts};")
    return "\n".join(lines) + "\n"


def rmark_csv(histories: CaptureHistories, spreadsheet_safe: bool = False) -> str:
    """RMark-ready: `ch` as text (leading zeros kept), `freq`, `id`, and `site` when grouped
    (`spreadsheet_safe`: a site that a spreadsheet would run as a formula is made inert)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC)
    header = ["ch", "freq", "id"] + (["site"] if histories.groups else [])
    writer.writerow(header)
    for individual, history in histories.histories.items():
        row: list[Any] = [history, 1, individual]
        if histories.groups:
            group = histories.groups[individual]
            row.append(inert(group) if spreadsheet_safe else group)
        writer.writerow(row)
    return buffer.getvalue()


def export_capture_history(
    store: Store,
    out_path: Path,
    selection: ExportFilter | None = None,
    *,
    occasion_starts: list[date] | None = None,
    group_by_site: bool = False,
    spreadsheet_safe: bool = False,
) -> CaptureHistories:
    """Write MARK (.inp) or RMark CSV (.csv), chosen by the file name; returns what was written."""
    suffix = out_path.suffix.lower()
    if suffix not in (".inp", ".csv"):
        raise FinprintError(f"{out_path}: name the file .inp (MARK) or .csv (RMark).")
    histories = build_histories(
        sighting_rows(store, selection or ExportFilter()), occasion_starts, group_by_site
    )
    text = mark_inp(histories) if suffix == ".inp" else rmark_csv(histories, spreadsheet_safe)
    write_atomically(out_path, text)
    return histories
