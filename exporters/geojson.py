"""GeoJSON: sightings with a GPS position as points, for a GIS."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from catalog.store import Store
from exporters.selection import ExportFilter, sighting_rows, taken_at_iso
from exporters.tabular import write_atomically


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def feature_collection(rows: list[dict[str, Any]]) -> dict[str, Any]:
    features = [
        {
            "type": "Feature",
            # GeoJSON orders coordinates longitude first.
            "geometry": {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]},
            "properties": {
                "individual_id": row["individual_id"],
                "animal_id": row["animal_id"],
                "date": _iso(row["survey_date"]),
                "taken_at": taken_at_iso(row),
                "site": row["site"],
                "side": row["side"],
                "status": row["status"],
                "path": row["path"],
            },
        }
        for row in rows
        if row["latitude"] is not None and row["longitude"] is not None
    ]
    return {"type": "FeatureCollection", "features": features}


def export_geojson(store: Store, out_path: Path, selection: ExportFilter | None = None) -> tuple[int, int]:
    """Write the points; returns (points written, sightings left out for lack of GPS)."""
    rows = sighting_rows(store, selection or ExportFilter())
    collection = feature_collection(rows)
    write_atomically(out_path, json.dumps(collection, indent=1, ensure_ascii=False) + "\n")
    return len(collection["features"]), len(rows) - len(collection["features"])
