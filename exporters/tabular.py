"""CSV export: one row per photo path with its identification (the command-line contract's columns)."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Any

from catalog.store import Store


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return "" if value is None else value


def export_csv(store: Store, out_path: Path) -> int:
    """Write the catalogue's photos to `out_path`; returns the number of rows written."""
    result = store.query("photos_export")
    partial = out_path.with_name(out_path.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow([_value(v) for v in row])
    # Readers never see half a file.
    partial.replace(out_path)
    return len(result.rows)
