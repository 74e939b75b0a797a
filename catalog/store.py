"""The DuckDB catalogue: migrations from sql/, batched transactional writes, named queries."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from catalog.errors import CatalogueBusy, CatalogueNotFound, CatalogueWriteError, FinprintError, ReadOnlyQuery
from catalog.keypoint_store import KeypointStore, keypoints_path


def sql_dir() -> Path:
    """sql/ ships inside the wheel as catalog/sql; in a source checkout it sits beside catalog/."""
    installed = Path(__file__).parent / "sql"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "sql"


_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


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
    status: str
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
    # Paths whose content is already catalogued under another path: (path, photo_id, size, mtime).
    known_content_paths: list[tuple[str, str, int, int]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    # Paths whose file changed since they were catalogued; their path rows are replaced.
    stale_paths: list[str] = field(default_factory=list)
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
    """A sighting as training from the catalogue weighs it (catalog.training_set)."""

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

    def select(self, columns: list[str]) -> QueryResult:
        """The same rows with only these columns, in this order."""
        positions = [self.columns.index(name) for name in columns]
        return QueryResult(columns, [tuple(row[i] for i in positions) for row in self.rows])


def individual_label(number: int) -> str:
    return f"FP-{number:06d}"


NIGHTLY_BACKUP_SUFFIX = ".last-night.bak"


def nightly_backup_path(db_path: Path) -> Path:
    """Where the copy of the catalogue as the last finished night left it is kept."""
    return db_path.with_name(db_path.name + NIGHTLY_BACKUP_SUFFIX)


def write_nightly_backup(db_path: Path) -> Path:
    """Copy the closed catalogue beside itself, replacing the previous night's copy only once the
    new one is whole (a kill mid-copy leaves last night's intact)."""
    target = nightly_backup_path(db_path)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(db_path, partial)
    partial.replace(target)
    return target


def restore_hint(db_path: Path) -> str:
    """What to do with a catalogue DuckDB cannot read: restore a copy (the one finprint keeps of
    the last finished night, and the ones made before a schema upgrade, are named here)."""
    nightly = nightly_backup_path(db_path)
    if nightly.is_file():
        return (
            f" If the file was damaged, copy {nightly} (the catalogue as the last finished night left "
            "it: decisions made since are lost, photos catalogued since are catalogued again by the "
            f"next index run) over {db_path.name}; the photos themselves are untouched."
        )
    copies = sorted(db_path.parent.glob(f"{db_path.name}.schema*.bak")) if db_path.parent.is_dir() else []
    if not copies:
        return " If the file was damaged, restore it from your backup; the photos themselves are untouched."
    return (
        f" If the file was damaged, restore it from your backup, or from {copies[-1]} (the copy made "
        "before the last upgrade: decisions made since are lost, photos catalogued since are "
        "catalogued again by the next index run)."
    )


# The migration that drops DuckDB's keypoints table, and how many rows are copied out at a time
# (about 100 KB each).
_KEYPOINTS_MOVED_OUT = 10
_KEYPOINTS_PER_COPY = 200


class Store:
    """One open catalogue."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, db_path: Path, read_only: bool = False) -> None:
        self._con = connection
        self.db_path = db_path
        self.read_only = read_only
        self.schema_backup: Path | None = None
        self._keypoint_store: KeypointStore | None = None

    @classmethod
    def open(cls, db_path: Path, read_only: bool = False, sandboxed: bool = False) -> Store:
        """Open (and for writing, create and migrate) the catalogue at `db_path`.

        `sandboxed` (read-only) is for a person's own SQL: DuckDB then reaches no file but the
        catalogue (no COPY TO, ATTACH, read_csv, extensions), and the SQL cannot turn that off."""
        read_only = read_only or sandboxed
        if read_only and not db_path.is_file():
            raise CatalogueNotFound(db_path)
        if not read_only and not db_path.parent.is_dir():
            raise FinprintError(f"{db_path}: folder {db_path.parent} does not exist. Create it first.")
        try:
            connection = duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise CatalogueBusy(db_path, _lock_holder(str(exc))) from exc
            raise FinprintError(
                f"{db_path}: cannot open the catalogue ({exc}).{restore_hint(db_path)}"
            ) from exc
        except duckdb.Error as exc:
            raise FinprintError(f"{db_path}: not a finprint catalogue ({exc}).") from exc
        # finprint draws its own progress; DuckDB's bar would cut through it on long queries.
        connection.execute("SET enable_progress_bar = false")
        if sandboxed:
            # Locked last: the person's SQL cannot turn file access back on.
            connection.execute("SET enable_external_access = false")
            connection.execute("SET lock_configuration = true")
        store = cls(connection, db_path, read_only)
        if read_only:
            store._check_schema_readable()
        else:
            store.migrate()
        return store

    def _refuse_foreign_database(self) -> None:
        """A DuckDB file with tables but no finprint migration history is someone else's data:
        turning it into a catalogue would mix finprint's tables into it."""
        tables = {
            row[0]
            for row in self._con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
            ).fetchall()
        }
        if tables and "schema_migrations" not in tables:
            shown = ", ".join(sorted(tables)[:5])
            raise FinprintError(
                f"{self.db_path}: a DuckDB database that is not a finprint catalogue (it holds {shown}). "
                "Give --db a new file name, or the catalogue you meant."
            )

    def _check_schema_readable(self) -> None:
        """A read-only open cannot upgrade: say so instead of failing on a missing column."""
        try:
            row = self._con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except duckdb.CatalogException as exc:
            raise FinprintError(
                f"{self.db_path}: not a finprint catalogue (no schema_migrations table)."
            ) from exc
        version = int(row[0]) if row and row[0] is not None else 0
        newest = max(
            int(m[1]) for p in (sql_dir() / "migrations").iterdir() if (m := _MIGRATION_NAME.match(p.name))
        )
        if version > newest:
            raise FinprintError(
                f"{self.db_path}: catalogue schema {version} is newer than this finprint knows ({newest}). "
                "Upgrade finprint to open it."
            )
        if version < newest:
            raise FinprintError(
                f"{self.db_path}: catalogue made by an older finprint (schema {version}, now {newest}). "
                f"Upgrade it once (a backup copy is written first): finprint migrate --db {self.db_path}"
            )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """All or nothing: a failure, or a killed process, leaves none of the block's writes."""
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield
            self._con.execute("COMMIT")
        except BaseException as failure:
            # The connection may be unusable (disk full); DuckDB then drops the transaction itself.
            with suppress(duckdb.Error):
                self._con.execute("ROLLBACK")
            # A full disk or a read-only folder surfaces as an I/O error, or as a failed commit.
            if isinstance(failure, duckdb.IOException | duckdb.TransactionException):
                raise CatalogueWriteError(self.db_path, str(failure).splitlines()[0]) from failure
            raise

    def close(self) -> None:
        if self._keypoint_store is not None:
            self._keypoint_store.close()
        self._con.close()

    def _keypoints(self) -> KeypointStore:
        # Opened on first use: most commands never read keypoints.
        if self._keypoint_store is None:
            self._keypoint_store = KeypointStore.open(keypoints_path(self.db_path), self.read_only)
        return self._keypoint_store

    def keypoint_notes(self) -> list[str]:
        """What happened to the keypoints file at open (put aside when damaged), for the report."""
        note = self._keypoints().note
        return [note] if note else []

    def keypoint_count(self) -> int:
        """How many photos' keypoints the catalogue keeps (per detector)."""
        return self._keypoints().count()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is KeyboardInterrupt and not self.read_only:
            # Ctrl-C leaves the run it stopped marked interrupted at once, not "running" in every
            # report until the next night; only one writer holds the file, so it is that run.
            self._con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        self.close()

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations in sql/migrations that this catalogue has not had yet."""
        self._refuse_foreign_database()
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL)"
        )
        done = {row[0] for row in self._con.execute("SELECT version FROM schema_migrations").fetchall()}
        available = sorted(
            (int(m[1]), path)
            for path in (sql_dir() / "migrations").iterdir()
            if (m := _MIGRATION_NAME.match(path.name))
        )
        newest_known = available[-1][0] if available else 0
        if done and max(done) > newest_known:
            raise FinprintError(
                f"{self.db_path}: catalogue schema {max(done)} is newer than this finprint knows "
                f"({newest_known}). Upgrade finprint to open it."
            )
        pending = [(version, path) for version, path in available if version not in done]
        if done and pending:
            # An existing catalogue is copied before its schema changes, so a failed or unwanted
            # upgrade can always be rolled back by hand.
            self._con.execute("CHECKPOINT")
            backup = self.db_path.with_name(f"{self.db_path.name}.schema{max(done)}.bak")
            try:
                shutil.copy2(self.db_path, backup)
            except OSError as exc:
                raise FinprintError(
                    f"{self.db_path}: could not write the backup {backup} before upgrading the schema "
                    f"({exc}). Free some disk space or make the folder writable, then run again."
                ) from exc
            self.schema_backup = backup
        applied = []
        for version, path in pending:
            if version == _KEYPOINTS_MOVED_OUT:
                self._move_keypoints_out()
            with self._transaction():
                self._con.execute(path.read_text(encoding="utf-8"))
                self._con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [version, _now()])
            applied.append(version)
        return applied

    def _move_keypoints_out(self) -> None:
        """Copy the keypoints DuckDB kept into the keypoints file, before the migration that
        drops them; a kill in between copies them again on the next open."""
        cursor = self._con.execute("SELECT photo_id, detector, features FROM local_features")
        while rows := cursor.fetchmany(_KEYPOINTS_PER_COPY):
            by_detector: dict[str, list[tuple[str, bytes]]] = {}
            for photo_id, detector, blob in rows:
                by_detector.setdefault(detector, []).append((photo_id, bytes(blob)))
            for detector, features in by_detector.items():
                self._insert_features(detector, features)

    # -- runs -------------------------------------------------------------------------------

    def catalogue_model_versions(self) -> list[str]:
        """The model versions the catalogue's embeddings come from; two only while a reindex runs."""
        rows = self._con.execute("SELECT DISTINCT model_version FROM embeddings ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def start_run(
        self,
        model_version: str,
        distance_threshold: float,
        finprint_version: str,
        roots: list[str],
        decision_rule: str | None = None,
    ) -> int:
        # Only one writer can hold the file, so any run still marked running has died.
        self._con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        row = self._con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()
        run_id = int(row[0]) if row else 1
        self._con.execute(
            "INSERT INTO runs (run_id, started_at, status, model_version, distance_threshold, "
            "finprint_version, roots, decision_rule) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
            [run_id, _now(), model_version, distance_threshold, finprint_version, roots, decision_rule],
        )
        return run_id

    def finish_run(self, run_id: int, counts: dict[str, int], seconds: dict[str, float]) -> None:
        self._con.execute(
            "UPDATE runs SET finished_at = ?, status = 'finished', files_seen = ?, photos_new = ?, "
            "photos_failed = ?, individuals_new = ?, seconds_decode = ?, seconds_embed = ?, "
            "seconds_identify = ?, seconds_write = ? WHERE run_id = ?",
            [
                _now(),
                counts["files_seen"],
                counts["photos_new"],
                counts["photos_failed"],
                counts["individuals_new"],
                seconds.get("decode", 0.0),
                seconds.get("embed", 0.0),
                seconds.get("identify", 0.0),
                seconds.get("write", 0.0),
                run_id,
            ],
        )

    def stored_settings(self) -> dict[str, Any]:
        """The settings the catalogue keeps (see settings.CATALOGUE_SETTINGS), by name."""
        rows = self._con.execute("SELECT name, value FROM catalogue_settings").fetchall()
        return {name: json.loads(value) for name, value in rows}

    def remember_settings(self, values: dict[str, Any], sources: dict[str, str], run_id: int) -> None:
        """Keep these settings in the catalogue; a value that did not change keeps its first run."""
        stored = self.stored_settings()
        changed = {name: value for name, value in values.items() if stored.get(name, object()) != value}
        if not changed:
            return
        with self._transaction():
            self._con.execute(
                "DELETE FROM catalogue_settings WHERE name IN (SELECT unnest($names))",
                {"names": list(changed)},
            )
            self._insert(
                "catalogue_settings",
                {
                    "name": list(changed),
                    "value": [json.dumps(value) for value in changed.values()],
                    "source": [sources[name] for name in changed],
                    "run_id": [run_id] * len(changed),
                    "changed_at": [_now()] * len(changed),
                },
            )

    def latest_run_id(self) -> int | None:
        row = self._con.execute("SELECT max(run_id) FROM runs").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- what is already catalogued ---------------------------------------------------------

    def known_paths(self) -> dict[str, KnownPath]:
        """Every catalogued path with what a rerun compares, read once per run."""
        rows = self._con.execute(
            "SELECT path, size_bytes, mtime_ns, missing_since IS NOT NULL FROM photo_paths"
        ).fetchall()
        return {path: KnownPath(size, mtime, missing) for path, size, mtime, missing in rows}

    def absolutise_paths(self, renamed: dict[str, str]) -> None:
        """Give catalogued paths stored as typed (relative to wherever a run was started) their
        absolute form, in one transaction."""
        with self._transaction():
            self._con.execute(
                "INSERT INTO photo_paths SELECT n.new_path, p.* EXCLUDE (path) FROM photo_paths p "
                "JOIN (SELECT unnest($old) AS path, unnest($new) AS new_path) n USING (path)",
                {"old": list(renamed), "new": list(renamed.values())},
            )
            self._con.execute(
                "DELETE FROM photo_paths WHERE path IN (SELECT unnest($old))", {"old": list(renamed)}
            )

    def mark_missing(
        self,
        root_prefixes: list[str],
        present: set[str],
        known: dict[str, KnownPath],
        unlisted_prefixes: tuple[str, ...] = (),
    ) -> int:
        """Paths under the walked roots that were not found are marked missing, and found ones
        un-marked; returns how many are newly missing. Their photos and sightings stay. `known`
        is the run's snapshot from `known_paths`: paths added since are present by definition.
        Paths under `unlisted_prefixes` (folders that could not be listed) are left as they are:
        unreadable is not gone."""
        under = [
            (path, k.missing)
            for path, k in known.items()
            if path.startswith(tuple(root_prefixes)) and not path.startswith(unlisted_prefixes)
        ]
        gone = [path for path, missing in under if not missing and path not in present]
        back = [path for path, missing in under if missing and path in present]
        with self._transaction():
            if gone:
                self._con.execute(
                    "UPDATE photo_paths SET missing_since = $now WHERE path IN (SELECT unnest($paths))",
                    {"now": _now(), "paths": gone},
                )
            if back:
                self._con.execute(
                    "UPDATE photo_paths SET missing_since = NULL WHERE path IN (SELECT unnest($paths))",
                    {"paths": back},
                )
        return len(gone)

    def photos_to_reembed(self, model_version: str) -> list[tuple[str, str]]:
        """(photo_id, a present path) of every photo without an embedding from `model_version`."""
        rows = self._con.execute(
            "SELECT p.photo_id, min(pp.path) FILTER (WHERE pp.missing_since IS NULL) FROM photos p "
            "JOIN photo_paths pp USING (photo_id) "
            "WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.photo_id = p.photo_id "
            "AND e.model_version = $model) GROUP BY p.photo_id ORDER BY p.photo_id",
            {"model": model_version},
        ).fetchall()
        return [(photo_id, path) for photo_id, path in rows]

    def write_embeddings(
        self,
        model_version: str,
        photo_ids: list[str],
        vectors: list[np.ndarray],
        features: list[tuple[str, bytes]] | None = None,
        detector: str = "",
    ) -> None:
        """One reindex batch (embeddings, and keypoints where described), in one transaction."""
        with self._transaction():
            self._insert_embeddings(model_version, photo_ids, vectors)
            if features:
                self._insert_features(detector, features)

    def _insert_embeddings(self, model_version: str, photo_ids: list[str], vectors: list[np.ndarray]) -> None:
        self._insert(
            "embeddings",
            {
                "photo_id": photo_ids,
                "model_version": [model_version] * len(photo_ids),
                "vector": [v.tolist() for v in vectors],
            },
        )

    def _insert_features(self, detector: str, features: list[tuple[str, bytes]]) -> None:
        # Committed before the DuckDB batch that refers to them (see keypoint_store): a kill in
        # between leaves keypoints of photos not catalogued yet, which the rerun writes again.
        keypoints = self._keypoints()
        try:
            keypoints.put(detector, features)
        except sqlite3.Error as exc:
            raise CatalogueWriteError(keypoints.path, str(exc)) from exc

    def local_features(self, photo_ids: list[str], detector: str) -> dict[str, bytes]:
        """Cached keypoints of these photos made by `detector`; photos without any are left out."""
        return self._keypoints().get(photo_ids, detector)

    def described_photos(self, photo_ids: list[str], detector: str) -> set[str]:
        """Which of these photos already have keypoints made by `detector`."""
        return self._keypoints().described(photo_ids, detector)

    def drop_other_embeddings(self, model_version: str) -> int:
        """Finish a reindex: only `model_version`'s embeddings remain."""
        row = self._con.execute(
            "DELETE FROM embeddings WHERE model_version <> $model RETURNING photo_id",
            {"model": model_version},
        ).fetchall()
        return len(row)

    def known_photo_ids(self) -> set[str]:
        return {row[0] for row in self._con.execute("SELECT photo_id FROM photos").fetchall()}

    def individuals_since_last_finished_run(self) -> list[str]:
        """Individuals created by this run or by runs killed since the last finished one: the
        night in progress, however many times it was interrupted."""
        rows = self._con.execute(
            "SELECT individual_id FROM individuals WHERE created_run > "
            "(SELECT coalesce(max(run_id), 0) FROM runs WHERE status = 'finished') ORDER BY 1"
        ).fetchall()
        return [row[0] for row in rows]

    def encounters_since_last_finished_run(self) -> list[tuple[str, str | None, str | None, str]]:
        """(encounter, side, crop, individual) of the photos with an encounter that this night
        catalogued so far, however many times it was interrupted: its links are made at its end."""
        rows = self._con.execute(
            "SELECT p.encounter, p.side, p.crop, s.individual_id FROM photos p "
            "JOIN sightings s USING (photo_id) WHERE p.encounter IS NOT NULL AND p.run_id > "
            "(SELECT coalesce(max(run_id), 0) FROM runs WHERE status = 'finished') ORDER BY 1, 2, 3, 4"
        ).fetchall()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def photos_since_last_finished_run(self) -> list[TonightPhoto]:
        """The photos this night catalogued so far, however many times it was interrupted, with
        who each was decided to be, in photo id order: what its encounters are gathered from."""
        rows = self._con.execute(
            "SELECT p.photo_id, p.side, p.crop, p.survey_date, p.site, s.individual_id, s.status "
            "FROM photos p JOIN sightings s USING (photo_id) WHERE p.run_id > "
            "(SELECT coalesce(max(run_id), 0) FROM runs WHERE status = 'finished') ORDER BY 1"
        ).fetchall()
        return [TonightPhoto(*row) for row in rows]

    def next_individual_number(self) -> int:
        """One past every number ever given, those of individuals an undo removed included: an
        FP- id that was once in a report or an export must never name another fish."""
        row = self._con.execute("SELECT coalesce(max(number), 0) FROM individuals").fetchone()
        highest = int(row[0]) if row else 0
        for (previous,) in self._con.execute(
            "SELECT previous FROM decisions WHERE undone_at IS NOT NULL"
        ).fetchall():
            for created in json.loads(previous).get("created", []):
                digits = "".join(ch for ch in str(created) if ch.isdigit())
                if digits:
                    highest = max(highest, int(digits))
        return highest + 1

    def catalogued_photos(self, model_version: str) -> list[CataloguedPhoto]:
        """Every identified photo that has an embedding under `model_version` (no vectors)."""
        rows = self._con.execute(
            "SELECT p.photo_id, s.individual_id, p.side, p.crop FROM photos p "
            "JOIN sightings s USING (photo_id) "
            "JOIN embeddings e ON e.photo_id = p.photo_id AND e.model_version = ? "
            "ORDER BY p.photo_id",
            [model_version],
        ).fetchall()
        return [CataloguedPhoto(r[0], r[1], r[2], r[3]) for r in rows]

    def sightings_for_training(self) -> list[SightingForTraining]:
        """Every sighting with what training from the catalogue needs of it, in photo id order."""
        rows = self._con.execute(
            "SELECT s.photo_id, s.individual_id, s.status, s.probability, "
            "i.first_photo_id = s.photo_id, p.side, p.crop, p.survey_date, p.encounter, p.run_id, "
            "(SELECT min(pp.path) FROM photo_paths pp "
            " WHERE pp.photo_id = s.photo_id AND pp.missing_since IS NULL) "
            "FROM sightings s JOIN photos p USING (photo_id) "
            "JOIN individuals i ON i.individual_id = s.individual_id ORDER BY s.photo_id"
        ).fetchall()
        return [SightingForTraining(*row) for row in rows]

    def live_decisions(self) -> list[LiveDecision]:
        """Every decision not undone, oldest first."""
        rows = self._con.execute(
            "SELECT decision_id, action, individual_id, photo_ids, previous FROM decisions "
            "WHERE undone_at IS NULL ORDER BY decision_id"
        ).fetchall()
        return [
            LiveDecision(
                int(row[0]),
                str(row[1]),
                row[2],
                list(row[3] or []),
                {p: (v[0], v[1]) for p, v in json.loads(row[4]).get("sightings", {}).items()},
            )
            for row in rows
        ]

    def undone_decision_count(self) -> int:
        row = self._con.execute("SELECT count(*) FROM decisions WHERE undone_at IS NOT NULL").fetchone()
        return int(row[0]) if row else 0

    def vectors_for(self, photo_ids: list[str], model_version: str) -> np.ndarray:
        """The embeddings of these photos, in the order given."""
        rows = self._con.execute(
            # A join on the unnested ids: list_contains per row would compare every row with every
            # id, which at a million photos never ends.
            "SELECT e.photo_id, e.vector FROM embeddings e "
            "JOIN (SELECT unnest($ids) AS photo_id) wanted USING (photo_id) WHERE e.model_version = $m",
            {"m": model_version, "ids": photo_ids},
        ).fetchall()
        by_id = {photo_id: vector for photo_id, vector in rows}
        return np.asarray([by_id[p] for p in photo_ids], dtype=np.float32)

    # -- writes -----------------------------------------------------------------------------

    def write_batch(self, run_id: int, model_version: str, batch: Batch) -> None:
        """All of a batch's rows in one transaction: a killed process leaves none of them."""
        with self._transaction():
            if batch.stale_paths:
                self._con.execute(
                    "DELETE FROM photo_paths WHERE path IN (SELECT unnest($paths))",
                    {"paths": batch.stale_paths},
                )
            if batch.photos:
                photos = batch.photos
                self._insert(
                    "photos",
                    {
                        "photo_id": [p.photo_id for p in photos],
                        "width": [p.width for p in photos],
                        "height": [p.height for p in photos],
                        "taken_at": [p.taken_at for p in photos],
                        "latitude": [p.latitude for p in photos],
                        "longitude": [p.longitude for p in photos],
                        "survey_date": [p.survey_date for p in photos],
                        "site": [p.site for p in photos],
                        "camera": [p.camera for p in photos],
                        "side": [p.side for p in photos],
                        "crop": [p.crop for p in photos],
                        "taken_at_utc_offset": [p.taken_at_utc_offset for p in photos],
                        "encounter": [p.encounter for p in photos],
                        "run_id": [run_id] * len(photos),
                    },
                )
                self._insert_embeddings(model_version, [p.photo_id for p in photos], batch.vectors)
            paths = [(p.path, p.photo_id, p.size_bytes, p.mtime_ns) for p in batch.photos]
            paths += batch.known_content_paths
            if paths:
                self._insert(
                    "photo_paths",
                    {
                        "path": [p[0] for p in paths],
                        "photo_id": [p[1] for p in paths],
                        "size_bytes": [p[2] for p in paths],
                        "mtime_ns": [p[3] for p in paths],
                        "run_id": [run_id] * len(paths),
                    },
                )
            if batch.individuals:
                self._insert_individuals(batch.individuals, run_id)
            if batch.sightings:
                seen = batch.sightings
                self._insert(
                    "sightings",
                    {
                        "photo_id": [s.photo_id for s in seen],
                        "individual_id": [s.individual_id for s in seen],
                        "run_id": [run_id] * len(seen),
                        "status": [s.status for s in seen],
                        "distance": [s.distance for s in seen],
                        "matched_photo_id": [s.matched_photo_id for s in seen],
                        "second_individual_id": [s.second_individual_id for s in seen],
                        "second_distance": [s.second_distance for s in seen],
                        "probability": [s.probability for s in seen],
                        "inliers": [s.inliers for s in seen],
                        "decision_distance": [s.decision_distance for s in seen],
                        "keypoint_lines": [s.keypoint_lines for s in seen],
                    },
                )
            if batch.features:
                self._insert_features(batch.detector, batch.features)
            if batch.errors:
                self._insert(
                    "errors",
                    {
                        "run_id": [run_id] * len(batch.errors),
                        "path": [e[0] for e in batch.errors],
                        "reason": [e[1] for e in batch.errors],
                        "recorded_at": [_now()] * len(batch.errors),
                    },
                )

    def _insert_individuals(self, rows: list[IndividualRow], run_id: int) -> None:
        self._insert(
            "individuals",
            {
                "individual_id": [i.individual_id for i in rows],
                "number": [i.number for i in rows],
                "side": [i.side for i in rows],
                "crop": [i.crop for i in rows],
                "name": [None] * len(rows),
                "created_run": [run_id] * len(rows),
                "first_photo_id": [i.first_photo_id for i in rows],
            },
        )

    def _insert(self, table: str, columns: dict[str, list[Any]]) -> None:
        # One statement per table and batch: DuckDB unnests the column lists in bulk, where
        # executemany would pay a round trip per row.
        names = ", ".join(columns)
        selects = ", ".join(f"unnest(${name})" for name in columns)
        self._con.execute(f"INSERT INTO {table} ({names}) SELECT {selects}", columns)

    # -- reads ------------------------------------------------------------------------------

    def query(self, name: str, **params: Any) -> QueryResult:
        """Run the named query sql/queries/<name>.sql with DuckDB $name parameters."""
        path = sql_dir() / "queries" / f"{name}.sql"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in path.parent.glob("*.sql")))
            raise FinprintError(f"no query named {name!r}. Known queries: {known}.")
        cursor = self._con.execute(path.read_text(encoding="utf-8"), params)
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(columns, cursor.fetchall())

    @staticmethod
    def named_queries() -> dict[str, tuple[str, list[str]]]:
        """name -> (what it answers, its $parameters), from the files in sql/queries."""
        catalogue = {}
        for path in sorted((sql_dir() / "queries").glob("*.sql")):
            text = path.read_text(encoding="utf-8")
            first = text.splitlines()[0] if text else ""
            description = first.removeprefix("--").strip() if first.startswith("--") else ""
            parameters = sorted(set(re.findall(r"\$([a-z_]+)", text)))
            catalogue[path.stem] = (description, parameters)
        return catalogue

    def copy_query_to_parquet(self, name: str, out_path: Path, **params: Any) -> int:
        """Write a named query's result to a Parquet file; returns the number of rows."""
        query = (sql_dir() / "queries" / f"{name}.sql").read_text(encoding="utf-8").strip().rstrip(";")
        # COPY takes the file name as a literal; quotes in it are doubled.
        target = str(out_path).replace("'", "''")
        self._con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)", params)
        row = self._con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
        return int(row[0]) if row else 0

    # -- human decisions --------------------------------------------------------------------

    def resolve_photo(self, token: str) -> str | None:
        """A photo id from a path as catalogued or from a sha256 prefix of 8 or more hex digits."""
        # Paths are catalogued absolute: a path given relative to where the command runs is too.
        for path in dict.fromkeys((token, os.path.abspath(token))):
            row = self._con.execute(
                "SELECT photo_id FROM photo_paths WHERE path = $t", {"t": path}
            ).fetchone()
            if row:
                return str(row[0])
        if len(token) >= 8:
            rows = self._con.execute(
                "SELECT photo_id FROM photos WHERE starts_with(photo_id, lower($t))", {"t": token}
            ).fetchall()
            if len(rows) == 1:
                return str(rows[0][0])
        return None

    def sighting_states(self, photo_ids: list[str]) -> dict[str, tuple[str, str]]:
        """photo_id -> (individual_id, status)."""
        rows = self._con.execute(
            "SELECT photo_id, individual_id, status FROM sightings WHERE photo_id IN (SELECT unnest($ids))",
            {"ids": photo_ids},
        ).fetchall()
        return {photo_id: (individual, status) for photo_id, individual, status in rows}

    def photos_of(self, individual_id: str) -> list[str]:
        rows = self._con.execute(
            "SELECT photo_id FROM sightings WHERE individual_id = $i ORDER BY photo_id", {"i": individual_id}
        ).fetchall()
        return [row[0] for row in rows]

    def record_decision(
        self,
        action: str,
        reason: str,
        sighting_changes: dict[str, tuple[str, str]],
        individual_changes: dict[str, dict[str, str | None]],
        new_individuals: list[IndividualRow],
        individual_id: str | None = None,
        other_individual_id: str | None = None,
        name: str | None = None,
        decided_by: str | None = None,
    ) -> int:
        """Apply a decision and record it, with what it replaced and who made it (`decided_by`;
        default: the login running this command), in one transaction."""
        with self._transaction():
            photo_ids = sorted(sighting_changes)
            previous: dict[str, Any] = {
                "sightings": {p: list(v) for p, v in self.sighting_states(photo_ids).items()},
                "individuals": {
                    row[0]: {"name": row[1], "merged_into": row[2], "fish_id": row[3]}
                    for row in self._con.execute(
                        "SELECT individual_id, name, merged_into, fish_id FROM individuals "
                        "WHERE individual_id IN (SELECT unnest($ids))",
                        {"ids": sorted(individual_changes)},
                    ).fetchall()
                },
                "created": [i.individual_id for i in new_individuals],
            }
            if new_individuals:
                self._insert_individuals(new_individuals, self.latest_run_id() or 0)
            for photo_id, (individual, status) in sighting_changes.items():
                self._con.execute(
                    "UPDATE sightings SET individual_id = $i, status = $s WHERE photo_id = $p",
                    {"i": individual, "s": status, "p": photo_id},
                )
            for individual, fields in individual_changes.items():
                # Only the fields a decision names change; the others keep their value.
                current = previous["individuals"][individual]
                self._set_individual_fields(individual, {**current, **fields})
            row = self._con.execute("SELECT coalesce(max(decision_id), 0) + 1 FROM decisions").fetchone()
            decision_id = int(row[0]) if row else 1
            self._con.execute(
                "INSERT INTO decisions (decision_id, made_at, action, individual_id, other_individual_id, "
                "photo_ids, name, reason, previous, decided_by) "
                "VALUES ($id, $at, $action, $i, $o, $photos, $name, $reason, $prev, $by)",
                {
                    "id": decision_id,
                    "at": _now(),
                    "action": action,
                    "i": individual_id,
                    "o": other_individual_id,
                    "photos": photo_ids,
                    "name": name,
                    "reason": reason,
                    "prev": json.dumps(previous),
                    "by": decided_by or _login(),
                },
            )
        return decision_id

    def _set_individual_fields(self, individual_id: str, fields: dict[str, str | None]) -> None:
        self._con.execute(
            "UPDATE individuals SET name = $name, merged_into = $merged, fish_id = $fish "
            "WHERE individual_id = $i",
            {
                "name": fields["name"],
                "merged": fields["merged_into"],
                "fish": fields.get("fish_id"),
                "i": individual_id,
            },
        )

    def fish_members(self, individual_id: str) -> list[str]:
        """Every catalogue entry linked to this one as the same fish (itself included)."""
        rows = self._con.execute(
            "SELECT individual_id FROM individuals WHERE coalesce(fish_id, individual_id) = "
            "(SELECT coalesce(fish_id, individual_id) FROM individuals WHERE individual_id = $i) ORDER BY 1",
            {"i": individual_id},
        ).fetchall()
        return [row[0] for row in rows]

    def undo_decision(self, decision_id: int) -> str:
        """Put back what a decision replaced; returns its action. Later decisions must be undone first."""
        row = self._con.execute(
            "SELECT action, previous, undone_at FROM decisions WHERE decision_id = $d", {"d": decision_id}
        ).fetchone()
        if row is None:
            raise FinprintError(f"no decision {decision_id}. List them with: finprint decisions")
        action, previous_text, undone_at = row
        if undone_at is not None:
            raise FinprintError(f"decision {decision_id} was already undone.")
        later = self._con.execute(
            "SELECT min(decision_id) FROM decisions WHERE decision_id > $d AND undone_at IS NULL",
            {"d": decision_id},
        ).fetchone()
        if later and later[0] is not None:
            raise FinprintError(f"decision {later[0]} came after {decision_id}; undo it first.")
        previous = json.loads(previous_text)
        if previous["created"]:
            later_sightings = self._con.execute(
                "SELECT individual_id, count(*) FROM sightings "
                "WHERE individual_id IN (SELECT unnest($ids)) AND photo_id NOT IN (SELECT unnest($moved)) "
                "GROUP BY individual_id ORDER BY individual_id",
                {"ids": previous["created"], "moved": list(previous["sightings"])},
            ).fetchall()
            if later_sightings:
                who, count = later_sightings[0]
                raise FinprintError(
                    f"decision {decision_id} created {who}, and {count} later photo(s) were matched to it "
                    "since: undoing it would leave them pointing at no fish. Use `finprint merge` or "
                    "`finprint split` to correct it instead."
                )
        with self._transaction():
            for photo_id, (individual, status) in previous["sightings"].items():
                self._con.execute(
                    "UPDATE sightings SET individual_id = $i, status = $s WHERE photo_id = $p",
                    {"i": individual, "s": status, "p": photo_id},
                )
            for individual, fields in previous["individuals"].items():
                self._set_individual_fields(individual, fields)
            if previous["created"]:
                self._con.execute(
                    "DELETE FROM individuals WHERE individual_id IN (SELECT unnest($ids))",
                    {"ids": previous["created"]},
                )
            self._con.execute(
                "UPDATE decisions SET undone_at = $at WHERE decision_id = $d",
                {"at": _now(), "d": decision_id},
            )
        return str(action)

    def individual_view(self, individual_id: str) -> tuple[str | None, str | None]:
        """(side, crop) of an individual."""
        row = self._con.execute(
            "SELECT side, crop FROM individuals WHERE individual_id = $i", {"i": individual_id}
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def merged_into(self, individual_id: str) -> str | None:
        row = self._con.execute(
            "SELECT merged_into FROM individuals WHERE individual_id = $i", {"i": individual_id}
        ).fetchone()
        return None if row is None else row[0]

    def resolve_individual(self, token: str) -> str | None:
        """The catalogue id for an FP- id or a name given by `finprint rename`; a merged
        individual resolves to the one it was merged into."""
        row = self._con.execute(
            "SELECT individual_id FROM individuals WHERE individual_id = $t OR name = $t "
            "ORDER BY individual_id",
            {"t": token},
        ).fetchone()
        if row is None:
            return None
        current = str(row[0])
        for _ in range(100):  # a chain of merges, never a cycle, but stay bounded
            merged = self.merged_into(current)
            if merged is None:
                return current
            current = merged
        return current

    def integrity_problems(self) -> list[str]:
        """What is wrong inside the catalogue, each as a sentence; empty when all is well. Reads
        every table whole, so damage DuckDB can detect surfaces here rather than mid-night."""
        problems = []
        for table in ("runs", "photos", "photo_paths", "embeddings", "individuals", "sightings", "decisions"):
            try:
                self._con.execute(f"SELECT * FROM {table}").fetchall()
            except duckdb.Error as exc:
                problems.append(f"table {table} cannot be read ({exc})")
        if problems:
            return problems
        checks = {
            "sighting(s) of an individual that does not exist": "SELECT count(*) FROM sightings s "
            "WHERE NOT EXISTS (SELECT 1 FROM individuals i WHERE i.individual_id = s.individual_id)",
            "sighting(s) filed under an individual merged into another": "SELECT count(*) FROM sightings s "
            "JOIN individuals i USING (individual_id) WHERE i.merged_into IS NOT NULL",
            "individual(s) merged into one that does not exist": "SELECT count(*) FROM individuals i "
            "WHERE i.merged_into IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM individuals o WHERE o.individual_id = i.merged_into)",
            "photo(s) with no sighting": "SELECT count(*) FROM photos p "
            "WHERE NOT EXISTS (SELECT 1 FROM sightings s WHERE s.photo_id = p.photo_id)",
            "photo(s) with no path": "SELECT count(*) FROM photos p "
            "WHERE NOT EXISTS (SELECT 1 FROM photo_paths pp WHERE pp.photo_id = p.photo_id)",
            "individual number(s) given twice": "SELECT count(*) - count(DISTINCT number) FROM individuals",
        }
        for what, query in checks.items():
            row = self._con.execute(query).fetchone()
            if row and row[0]:
                problems.append(f"{row[0]} {what}")
        return problems + self._keypoints().problems()

    def individual_exists(self, individual_id: str) -> bool:
        return self.resolve_individual(individual_id) is not None

    def read_only_sql(self, statement: str) -> QueryResult:
        """Run a statement on a read-only connection (for a person's SQL, open it `sandboxed`);
        writes are refused by DuckDB itself."""
        try:
            cursor = self._con.execute(statement)
        except duckdb.InvalidInputException as exc:
            if "read-only" in str(exc):
                raise ReadOnlyQuery(str(exc).splitlines()[0]) from exc
            raise FinprintError(f"SQL error: {exc}") from exc
        except duckdb.PermissionException as exc:
            raise FinprintError(
                f"SQL refused: finprint sql reads the catalogue only, no other file "
                f"({str(exc).splitlines()[0]}). Use `finprint export` to write files."
            ) from exc
        except duckdb.Error as exc:
            raise FinprintError(f"SQL error: {exc}") from exc
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(columns, cursor.fetchall() if columns else [])


def _login() -> str:
    """Who is running this command, for the decisions they make."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        # No login name (a container without a passwd entry): the decision still counts.
        return "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


def _lock_holder(message: str) -> str:
    match = re.search(r"PID (\d+)", message)
    return f"process {match[1]}" if match else "another process"
