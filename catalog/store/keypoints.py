"""The store's keypoint half: photos' keypoints in a SQLite file beside the DuckDB catalogue.

Verification reads back the keypoints of a 20-photo shortlist for every new photo. DuckDB is a
column store: fetching a few 100 KB blobs reads the whole blob column, so that lookup grew with
the catalogue (130 ms at 1,000 photos, 480 ms at 30,000, `just bench-feature-lookup`). A SQLite
B-tree keyed by photo finds them in about 10 ms at any size.

The keypoints are a cache, not a record: they are keyed by the photo's content hash and the
detector that made them, so an entry is true for as long as it exists, whatever the catalogue
says. That is what lets the two files commit apart: keypoints are written before the DuckDB
batch that needs them, a kill between the two leaves only keypoints no photo refers to yet, and a
lost or damaged file costs verification evidence (a photo without keypoints can split a fish,
never merge two), never a decision already recorded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

KEYPOINTS_SUFFIX = ".keypoints"
DAMAGED_SUFFIX = ".damaged"
# Ids per statement: well under SQLite's bound-parameter limit (32,766 since 3.32).
_IDS_PER_QUERY = 500


def keypoints_path(db_path: Path) -> Path:
    """Where a catalogue's keypoints are kept: beside it, named after it."""
    return db_path.with_name(db_path.name + KEYPOINTS_SUFFIX)


class KeypointStore:
    """Keypoints by (photo, detector), read and written in bulk."""

    def __init__(self, connection: sqlite3.Connection | None, path: Path, note: str | None = None) -> None:
        self._con = connection
        self.path = path
        # Set when a damaged file was put aside at open: the run report says so.
        self.note = note

    @classmethod
    def open(cls, path: Path, read_only: bool = False) -> KeypointStore:
        """Open (for writing: create) the keypoints at `path`. A file SQLite cannot read is put
        aside as `<name>.damaged` and a new one started; read-only, it reads as empty."""
        if read_only:
            if not path.is_file():
                return cls(None, path)
            try:
                connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
                _check_readable(connection)
            except sqlite3.Error as exc:
                return cls(None, path, f"{path} could not be read ({exc}); the next index run puts it aside")
            return cls(connection, path)
        try:
            connection = _create(path)
        except sqlite3.DatabaseError as exc:
            aside = path.with_name(path.name + DAMAGED_SUFFIX)
            path.replace(aside)
            for journal in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                journal.unlink(missing_ok=True)
            note = (
                f"{path} could not be read ({exc}); it was moved to {aside.name} and a new one "
                "started. Photos catalogued before tonight have no keypoints until a reindex to another "
                "model (finprint reindex) describes them again; until then they can split a fish but "
                "not join one."
            )
            return cls(_create(path), path, note)
        return cls(connection, path)

    def get(self, photo_ids: list[str], detector: str) -> dict[str, bytes]:
        """The keypoints of these photos made by `detector`; photos without any are left out."""
        return {
            photo_id: bytes(blob) for photo_id, blob in self._rows("photo_id, features", photo_ids, detector)
        }

    def described(self, photo_ids: list[str], detector: str) -> set[str]:
        """Which of these photos have keypoints made by `detector` (their ids only, no blobs)."""
        return {photo_id for (photo_id,) in self._rows("photo_id", photo_ids, detector)}

    def _rows(self, columns: str, photo_ids: list[str], detector: str) -> Iterator[tuple[Any, ...]]:
        if self._con is None:
            return
        for start in range(0, len(photo_ids), _IDS_PER_QUERY):
            chunk = photo_ids[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            yield from self._con.execute(
                f"SELECT {columns} FROM keypoints WHERE detector = ? AND photo_id IN ({marks})",
                [detector, *chunk],
            )

    def put(self, detector: str, features: Iterable[tuple[str, bytes]]) -> None:
        """Write keypoints in one transaction; a photo described again by a detector replaces
        what that detector made before."""
        if self._con is None:
            raise RuntimeError(f"{self.path} was opened read-only")
        with self._con:
            self._con.executemany(
                "INSERT OR REPLACE INTO keypoints (photo_id, detector, features) VALUES (?, ?, ?)",
                ((photo_id, detector, blob) for photo_id, blob in features),
            )

    def counts(self) -> dict[str, int]:
        """How many photos each detector has described."""
        if self._con is None:
            return {}
        rows = self._con.execute("SELECT detector, count(*) FROM keypoints GROUP BY detector").fetchall()
        return {str(detector): int(count) for detector, count in rows}

    def problems(self) -> list[str]:
        """What SQLite's own check finds wrong with the file (nothing when it is whole)."""
        if self._con is None:
            return [self.note] if self.note else []
        try:
            rows = self._con.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            return [f"{self.path}: {exc}"]
        return [f"{self.path}: {row[0]}" for row in rows if row[0] != "ok"]

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _create(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    try:
        # WAL: `report --html` can read while a night writes; a killed writer loses nothing it
        # committed. NORMAL is durable against a killed process (only a power cut can drop the
        # last commits, which costs verification evidence, not decisions).
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS keypoints (photo_id TEXT NOT NULL, detector TEXT NOT NULL, "
            "features BLOB NOT NULL, PRIMARY KEY (photo_id, detector))"
        )
        _check_readable(connection)
    except sqlite3.DatabaseError:
        connection.close()
        raise
    return connection


def _check_readable(connection: sqlite3.Connection) -> None:
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
