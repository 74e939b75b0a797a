"""Photo tables: CSV, JSON and Parquet, one row per photo path (the command-line contract's columns)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from catalog.errors import FinprintError
from catalog.store import Store
from exporters.cells import inert
from exporters.selection import ExportFilter, photo_rows


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@contextmanager
def atomic_target(out_path: Path) -> Iterator[Path]:
    """A path beside `out_path` to write to; renamed onto it only when the block succeeds, so
    readers never see half a file and a failed export leaves nothing behind."""
    if not out_path.parent.is_dir():
        raise FinprintError(
            f"{out_path}: folder {out_path.parent} does not exist. Create it first, or write to a folder "
            "that exists."
        )
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        yield partial
        partial.replace(out_path)
    except OSError as exc:
        raise FinprintError(
            f"{out_path}: could not write the file ({exc.strerror or exc}). Check that the folder is "
            "writable and the disk has space."
        ) from exc
    finally:
        partial.unlink(missing_ok=True)


def write_atomically(out_path: Path, text: str) -> None:
    with atomic_target(out_path) as partial:
        partial.write_text(text, encoding="utf-8", newline="")


def export_csv(
    store: Store, out_path: Path, selection: ExportFilter | None = None, spreadsheet_safe: bool = False
) -> int:
    """Write the photos to CSV; returns the number of rows written. With `spreadsheet_safe`, text
    that a spreadsheet would run as a formula (a site named `=HYPERLINK(...)`) is made inert."""
    result = photo_rows(store, selection or ExportFilter())
    with atomic_target(out_path) as partial, partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(result.columns)
        for row in result.rows:
            cells = ["" if v is None else _value(v) for v in row]
            writer.writerow([inert(c) for c in cells] if spreadsheet_safe else cells)
    return len(result.rows)


def export_json(store: Store, out_path: Path, selection: ExportFilter | None = None) -> int:
    """Write the photos as a JSON array of objects (nulls kept as null)."""
    result = photo_rows(store, selection or ExportFilter())
    rows = [{c: _value(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
    write_atomically(out_path, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    return len(rows)


def export_parquet(store: Store, out_path: Path, selection: ExportFilter | None = None) -> int:
    """Write the photos to Parquet with DuckDB's own writer (typed columns, no pyarrow needed)."""
    with atomic_target(out_path) as partial:
        return store.copy_query_to_parquet("photos_export", partial, **(selection or ExportFilter()).params())
