"""Which sightings an export includes: date range, site and individual filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from catalog.store import QueryResult, Store


@dataclass(frozen=True)
class ExportFilter:
    """Filters shared by every export format; None means no filter."""

    since: date | None = None
    until: date | None = None
    site: str | None = None
    individual: str | None = None
    side: str | None = None

    def described(self) -> str:
        """The filters as the command line gives them ("" for none)."""
        given = [(f"--{name}", value) for name, value in self.params().items() if value is not None]
        return " ".join(f"{flag} {value}" for flag, value in given)

    def params(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "site": self.site,
            "individual": self.individual,
            "side": self.side,
        }


def taken_at_iso(row: dict[str, Any], timespec: str = "auto") -> str | None:
    """When a sighting's photo was taken, ISO 8601, followed by the camera's UTC offset when it
    wrote one (taken_at is its local clock time)."""
    if row["taken_at"] is None:
        return None
    return str(row["taken_at"].isoformat(timespec=timespec)) + str(row["taken_at_utc_offset"] or "")


def photo_rows(store: Store, selection: ExportFilter) -> QueryResult:
    """One row per photo path (csv, json, parquet)."""
    return store.query("photos_export", **selection.params())


def sighting_rows(store: Store, selection: ExportFilter) -> list[dict[str, Any]]:
    """One dict per sighting (Darwin Core, capture histories, GeoJSON)."""
    result = store.query("sightings_export", **selection.params())
    return result.records()
