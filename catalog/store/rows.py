"""The catalogue's rows as Python sees them, and the column lists DuckDB inserts are built from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

import numpy as np

from catalog.vocabulary import SightingStatus


@dataclass(frozen=True)
class PhotoRow:
    """A newly catalogued photo at one path."""

    photo_id: str
    path: str
    size_bytes: int
    mtime_ns: int
    width: int
    height: int
    taken_at: datetime | None
    latitude: float | None
    longitude: float | None
    survey_date: date | None
    site: str | None
    camera: str | None
    side: str | None
    crop: str | None
    taken_at_utc_offset: str | None = None
    encounter: str | None = None


@dataclass(frozen=True)
class SightingRow:
    """Which individual a photo shows, and how sure finprint is."""

    photo_id: str
    individual_id: str
    status: SightingStatus
    distance: float | None
    matched_photo_id: str | None
    second_individual_id: str | None
    second_distance: float | None
    probability: float | None = None
    inliers: int | None = None
    # What the threshold was applied to (average linkage for an individual first seen tonight).
    decision_distance: float | None = None
    # The keypoint correspondences the match was decided on (verify.DecisiveLines bytes).
    keypoint_lines: bytes | None = None
    # Why agreeing keypoints were held back (vocabulary.Caution), if they were.
    caution: str | None = None


@dataclass(frozen=True)
class PathRow:
    """Where a catalogued photo's content was found, and the file's size and time as the walk saw them."""

    path: str
    photo_id: str
    size_bytes: int
    mtime_ns: int

    @classmethod
    def of(cls, photo: PhotoRow) -> PathRow:
        return cls(photo.path, photo.photo_id, photo.size_bytes, photo.mtime_ns)


@dataclass(frozen=True)
class PhotoError:
    """A file the run could not catalogue, and why: a row of the run's errors."""

    path: str
    reason: str


@dataclass(frozen=True)
class IndividualRow:
    """A new catalogue entry."""

    individual_id: str
    number: int
    side: str | None
    crop: str | None
    first_photo_id: str


@dataclass
class Batch:
    """Everything one batch adds to the catalogue; written in one transaction or not at all."""

    photos: list[PhotoRow] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    individuals: list[IndividualRow] = field(default_factory=list)
    sightings: list[SightingRow] = field(default_factory=list)
    # Paths whose content is already catalogued under another path.
    known_content_paths: list[PathRow] = field(default_factory=list)
    errors: list[PhotoError] = field(default_factory=list)
    # Paths whose file changed since they were catalogued; their path rows are replaced.
    stale_paths: list[str] = field(default_factory=list)
    # (old photo id, new photo id) of files rewritten in place with the same picture: the new
    # photo takes over the old one's sighting, and the old one is kept as replaced.
    superseded: list[tuple[str, str]] = field(default_factory=list)
    # (old photo id, new photo id) of files overwritten with another picture: the old photo keeps
    # its sighting (it happened) and is marked replaced, since its path is the new one's now.
    displaced: list[tuple[str, str]] = field(default_factory=list)
    # (photo_id, serialised keypoints) of photos described for verification.
    features: list[tuple[str, bytes]] = field(default_factory=list)
    detector: str = ""


@dataclass(frozen=True)
class KnownPath:
    """A catalogued path as the walk compares it."""

    size_bytes: int
    mtime_ns: int
    missing: bool


@dataclass(frozen=True)
class CataloguedPhoto:
    """A photo already in the catalogue, as identification needs it."""

    photo_id: str
    individual_id: str
    side: str | None
    crop: str | None


@dataclass(frozen=True)
class TonightPhoto:
    """A photo of the night in progress and its sighting, as the night's grouping needs it."""

    photo_id: str
    side: str | None
    crop: str | None
    survey_date: date | None
    site: str | None
    individual_id: str
    status: str


@dataclass(frozen=True)
class SightingForTraining:
    """A sighting as training from the catalogue weighs it (catalog.offline.training_set)."""

    photo_id: str
    individual_id: str
    status: str
    probability: float | None
    # The photo founded its individual: the individual is, by definition, the fish it shows.
    founding: bool
    side: str | None
    crop: str | None
    survey_date: date | None
    encounter: str | None
    # The run that catalogued the photo: the night, where the photo has no survey date.
    run_id: int
    # A catalogued path not marked missing (the smallest, when several show the photo), or None.
    path: str | None


@dataclass(frozen=True)
class LiveDecision:
    """A decision that was not undone, as training from the catalogue reads it."""

    decision_id: int
    action: str
    individual_id: str | None
    photo_ids: list[str]
    # photo id -> (individual, status) before the decision.
    previous_sightings: dict[str, tuple[str, str]]


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        """The rows as column name -> value: what a reader should use when a query's columns
        may change order or grow."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def select(self, columns: list[str]) -> QueryResult:
        """The same rows with only these columns, in this order."""
        positions = [self.columns.index(name) for name in columns]
        return QueryResult(columns, [tuple(row[i] for i in positions) for row in self.rows])


@dataclass(frozen=True)
class Replaced:
    """What a decision replaced, kept with it so that it can be undone: each moved photo's
    (individual, status), each changed individual's fields, the individuals it created."""

    sightings: dict[str, tuple[str, str]]
    individuals: dict[str, dict[str, str | None]]
    created: list[str]

    def to_json(self) -> str:
        return json.dumps(
            {
                "sightings": {p: list(v) for p, v in self.sightings.items()},
                "individuals": self.individuals,
                "created": self.created,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Replaced:
        stored = json.loads(text)
        return cls(
            {p: (v[0], v[1]) for p, v in stored.get("sightings", {}).items()},
            stored.get("individuals", {}),
            [str(c) for c in stored.get("created", [])],
        )


@dataclass(frozen=True)
class DecisionRow:
    """One decision as the store applies and records it: what it changes, what that replaces,
    who made it and why."""

    action: str
    reason: str
    # photo -> the (individual, status) it has from now on.
    sightings: dict[str, tuple[str, str]]
    # individual -> the fields the decision changes (the others keep their value).
    individuals: dict[str, dict[str, str | None]]
    created: list[IndividualRow]
    replaced: Replaced
    individual_id: str | None = None
    other_individual_id: str | None = None
    name: str | None = None
    # None: the login running the command.
    decided_by: str | None = None


def individual_label(number: int) -> str:
    return f"FP-{number:06d}"


def insert_columns(rows: list[Any], leave_out: tuple[str, ...] = (), **same: Any) -> dict[str, list[Any]]:
    """Column name -> values of a batch of row dataclasses, as the store inserts them: one column
    per field (but those in `leave_out`, which belong to another table), plus `same` columns that
    hold one value for every row (the run, the time)."""
    if not rows:
        return {}
    names = [f.name for f in fields(rows[0]) if f.name not in leave_out]
    columns = {name: [getattr(row, name) for row in rows] for name in names}
    columns.update({name: [value] * len(rows) for name, value in same.items()})
    return columns
