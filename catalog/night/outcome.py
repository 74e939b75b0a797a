"""What a night or a reindex did (RunResult, ReindexResult), and where a catalogue's graphs live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from catalog.store import PhotoError

ProgressCallback = Callable[[int, int], None]


@dataclass
class RunResult:
    """What one index run did."""

    run_id: int
    model_version: str
    distance_threshold: float
    providers: list[str]
    files_seen: int = 0
    files_unchanged: int = 0
    photos_new: int = 0
    duplicate_paths: int = 0
    paths_missing: int = 0
    individuals_new: int = 0
    # Photos filed as re-sightings and for review, and the earlier individuals re-sighted.
    matched: int = 0
    review: int = 0
    individuals_resighted: int = 0
    errors: list[PhotoError] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    links_made: int = 0
    # The night's grouping (catalog.encounters): photos it moved or took out of review, and the
    # individuals first seen tonight it left with no photo (merged into another).
    photos_regrouped: int = 0
    individuals_folded: int = 0
    # Catalogued photos found under a new path only (a renamed folder, a moved file).
    photos_moved: int = 0
    # Catalogued photos whose file was rewritten with the same picture (EXIF written, re-export).
    photos_edited: int = 0


def graph_directory(db_path: Path) -> Path:
    """Where the HNSW graphs of a catalogue are kept: beside it, named after it."""
    return db_path.with_name(db_path.name + ".hnsw")


@dataclass
class ReindexResult:
    """What a reindex did."""

    model_version: str
    photos_embedded: int = 0
    # Photos whose keypoints the run's detector made (those that had none of its keypoints).
    photos_described: int = 0
    detector: str = ""
    embeddings_dropped: int = 0
    errors: list[PhotoError] = field(default_factory=list)
    # With skip_unreadable: catalogued photos left without an embedding of the new model.
    photos_left_out: int = 0
