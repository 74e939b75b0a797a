"""The store's keypoint half: photos' keypoints in a SQLite file beside the DuckDB catalogue.

Verification reads back the keypoints of a 20-photo shortlist for every new photo. DuckDB is a
column store: fetching a few 100 KB blobs reads the whole blob column, so that lookup grew with
the catalogue (130 ms at 1,000 photos, 480 ms at 30,000, `just bench feature-lookup`). A SQLite
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

from catalog.errors import FinprintError

KEYPOINTS_SUFFIX = ".keypoints"
DAMAGED_SUFFIX = ".damaged"
# Ids per statement: well under SQLite's bound-parameter limit (32,766 since 3.32).
_IDS_PER_QUERY = 500


def keypoints_path(db_path: Path) -> Path:
    """Where a catalogue's keypoints are kept: beside it, named after it."""
    return db_path.with_name(db_path.name + KEYPOINTS_SUFFIX)


class KeypointStore:
    """Keypoints by (photo, detector), read and written in bulk."""

    def __init__(
        self,
        connection: sqlite3.Connection | None,
        path: Path,
        note: str | None = None,
        read_only: bool = False,
    ) -> None:
        self._con = connection
        self.path = path
        # What was found at open (put aside, missing, another catalogue's): the run report says so.
        self.note = note
        self.read_only = read_only

    @classmethod
    def open(
        cls, path: Path, read_only: bool = False, catalogue_id: str | None = None, expected: bool = False
    ) -> KeypointStore:
        """Open (for writing: create) the keypoints at `path`. A file SQLite finds damaged is put
        aside as `<name>.damaged` and a new one started; read-only, it reads as empty. A full disk
        or any other failure to write is an error that moves nothing.

        With `catalogue_id`, the file is bound to that catalogue: a file made for another one, or
        none where the catalogue has kept keypoints before (`expected`), is noted for the run
        report and `finprint check`, with `finprint reindex` as the repair."""
        existed = path.is_file()
        if read_only:
            if not existed:
                note = _missing_note(path) if expected else None
                return cls(None, path, note)
            try:
                connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
                _check_readable(connection)
            except sqlite3.Error as exc:
                return cls(None, path, f"{path} could not be read ({exc}); the next index run puts it aside")
            return cls(
                connection, path, _binding_note(connection, path, catalogue_id, bind=False), read_only=True
            )
        try:
            connection = _create(path)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise _write_error(path, exc) from exc
            aside = path.with_name(path.name + DAMAGED_SUFFIX)
            path.replace(aside)
            for journal in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                journal.unlink(missing_ok=True)
            note = (
                f"{path} could not be read ({exc}); it was moved to {aside.name} and a new one "
                f"started. {_REPAIR}"
            )
            connection = _create(path)
            _binding_note(connection, path, catalogue_id, bind=True)
            return cls(connection, path, note)
        try:
            note = _binding_note(connection, path, catalogue_id, bind=True)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise _write_error(path, exc) from exc
        if not existed and expected:
            note = _missing_note(path)
        return cls(connection, path, note)

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
        """What is wrong with the file as it stands: unreadable, missing, another catalogue's (seen
        read-only: opened for writing, a file is made this catalogue's at once), or what SQLite's
        own check finds; nothing when it is this catalogue's and whole."""
        if self._con is None:
            return [self.note] if self.note else []
        standing = [self.note] if self.note and self.read_only else []
        try:
            rows = self._con.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            return [*standing, f"{self.path}: {exc}"]
        return standing + [f"{self.path}: {row[0]}" for row in rows if row[0] != "ok"]

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


_REPAIR = (
    "Photos catalogued before tonight have no keypoints until `finprint reindex` describes them "
    "again; until then they can split a fish but not join one."
)


def _missing_note(path: Path) -> str:
    return (
        f"{path} is missing: the catalogue kept keypoints before (was it moved or copied without "
        f"it?). {_REPAIR}"
    )


def _binding_note(
    connection: sqlite3.Connection, path: Path, catalogue_id: str | None, *, bind: bool
) -> str | None:
    """Whether the file belongs to `catalogue_id`; an unbound file (new, or made before files were
    bound) is bound to it when `bind`. Returns what to tell a person, or None."""
    if catalogue_id is None:
        return None
    has_table = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'binding'"
    ).fetchone()
    row = (
        connection.execute("SELECT catalogue_id FROM binding").fetchone()
        if has_table and has_table[0]
        else None
    )
    if row is None:
        if bind:
            with connection:
                connection.execute("CREATE TABLE IF NOT EXISTS binding (catalogue_id TEXT NOT NULL)")
                connection.execute("INSERT INTO binding VALUES (?)", [catalogue_id])
        return None
    if row[0] == catalogue_id:
        return None
    if bind:
        with connection:
            connection.execute("UPDATE binding SET catalogue_id = ?", [catalogue_id])
    return (
        f"{path} was made for another catalogue (id {row[0]}), not this one: it was kept for the "
        f"photos it describes, and is this catalogue's from now on. {_REPAIR}"
    )


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """SQLite says the file itself is damaged or not a database (not: full disk, no permission)."""
    return getattr(exc, "sqlite_errorname", "") in {"SQLITE_CORRUPT", "SQLITE_NOTADB"} or (
        not hasattr(exc, "sqlite_errorname") and "malformed" in str(exc)
    )


def _write_error(path: Path, exc: sqlite3.DatabaseError) -> FinprintError:
    return FinprintError(
        f"{path}: the keypoints file could not be opened for writing ({exc}). It was left as it is. "
        "Free disk space (or make the folder writable), then run the same command again."
    )
