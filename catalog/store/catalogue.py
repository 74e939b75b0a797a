"""One open catalogue: the DuckDB connection, its transactions, and every read and write finprint makes."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from catalog.errors import CatalogueBusy, CatalogueNotFound, CatalogueWriteError, FinprintError
from catalog.store import named, schema
from catalog.store.backups import restore_hint, unreadable_tables
from catalog.store.keypoints import KeypointStore, keypoints_path
from catalog.store.rows import (
    Batch,
    CataloguedPhoto,
    DecisionRow,
    IndividualRow,
    KnownPath,
    LiveDecision,
    PathRow,
    QueryResult,
    Replaced,
    SightingForTraining,
    TonightPhoto,
    insert_columns,
)
from catalog.vocabulary import FINPRINT, RunStatus

# The migration that drops DuckDB's keypoints table, and how many rows are copied out at a time
# (about 100 KB each).
_KEYPOINTS_MOVED_OUT = 10
_KEYPOINTS_PER_COPY = 200
# PhotoRow's fields that belong to photo_paths, not photos (one photo, possibly many paths).
_PATH_FIELDS = ("path", "size_bytes", "mtime_ns")
# The newest finished run: photos and individuals after it belong to the night in progress,
# however many times it was interrupted.
_LAST_FINISHED_RUN = f"(SELECT coalesce(max(run_id), 0) FROM runs WHERE status = '{RunStatus.FINISHED}')"
# Only one writer holds the file, so a run still marked running when a writer opens it has died.
_MARK_DEAD_RUNS = f"UPDATE runs SET status = '{RunStatus.INTERRUPTED}' WHERE status = '{RunStatus.RUNNING}'"


class Store:
    """One open catalogue."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, db_path: Path, read_only: bool = False) -> None:
        self._con = connection
        self.db_path = db_path
        self.read_only = read_only
        self.schema_backup: Path | None = None
        self._keypoint_store: KeypointStore | None = None
        self._identity_row: tuple[str, bool] | None = None
        # Where a sandboxed connection spills big queries (removed on close).
        self._spill: Path | None = None

    @classmethod
    def open(cls, db_path: Path, read_only: bool = False, sandboxed: bool = False) -> Store:
        """Open (and for writing, create and migrate) the catalogue at `db_path`.

        `sandboxed` (read-only) is for a person's own SQL: DuckDB then reaches no file but the
        catalogue (no COPY TO, ATTACH, read_csv, extensions), and the SQL cannot turn that off."""
        read_only = read_only or sandboxed
        require_text_path(db_path)
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
        spill: Path | None = None
        if sandboxed:
            # A big query spills to a folder of its own in the system's temporary space, never
            # into <catalogue>.tmp beside the catalogue (a read-only command must write nothing
            # there); removed on close.
            spill = Path(tempfile.mkdtemp(prefix="finprint-sql-"))
            connection.execute("SET temp_directory = ?", [str(spill)])
            # Locked last: the person's SQL cannot turn file access back on.
            connection.execute("SET enable_external_access = false")
            connection.execute("SET lock_configuration = true")
        store = cls(connection, db_path, read_only)
        store._spill = spill
        if read_only:
            schema.check_schema_readable(connection, db_path)
        else:
            store.migrate()
        return store

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
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)

    def _keypoints(self) -> KeypointStore:
        # Opened on first use: most commands never read keypoints.
        if self._keypoint_store is None:
            identity = self._identity()
            self._keypoint_store = KeypointStore.open(
                keypoints_path(self.db_path),
                self.read_only,
                catalogue_id=None if identity is None else identity[0],
                expected=identity is not None and identity[1],
            )
        return self._keypoint_store

    def _identity(self) -> tuple[str, bool] | None:
        """The catalogue's id and whether it has kept keypoints before; None before schema 14 (while
        migrating). Read once: every batch that keeps keypoints asks."""
        if self._identity_row is not None:
            return self._identity_row
        try:
            row = self._con.execute(
                "SELECT catalogue_id, keypoints_since IS NOT NULL FROM catalogue_identity"
            ).fetchone()
        except duckdb.CatalogException:
            return None
        self._identity_row = None if row is None else (str(row[0]), bool(row[1]))
        return self._identity_row

    def keypoint_notes(self) -> list[str]:
        """What happened to the keypoints file at open (put aside when damaged), for the report."""
        note = self._keypoints().note
        return [note] if note else []

    def keypoint_count(self) -> int:
        """How many (photo, detector) keypoint entries the catalogue keeps."""
        return sum(self.keypoint_counts().values())

    def keypoint_counts(self) -> dict[str, int]:
        """How many photos each detector (by its full name) has described in this catalogue."""
        return self._keypoints().counts()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, *rest: object
    ) -> None:
        if exc_type is KeyboardInterrupt and not self.read_only:
            # Ctrl-C leaves the run it stopped marked interrupted at once, not "running" in every
            # report until the next night; only one writer holds the file, so it is that run.
            self._con.execute(_MARK_DEAD_RUNS)
        self.close()
        if isinstance(error, duckdb.Error) and "Corrupt database file" in str(error):
            # Whichever read met the damaged block (a night, a listing, a decision): one line
            # naming the check and the copy to restore, not a traceback.
            raise self._damaged(error) from error

    def _damaged(self, error: duckdb.Error) -> FinprintError:
        return FinprintError(
            f"{self.db_path}: the catalogue cannot be read ({str(error).splitlines()[0]}). `finprint check "
            f"--db {self.db_path}` says which table.{restore_hint(self.db_path)}"
        )

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations in sql/migrations that this catalogue has not had yet."""
        schema.refuse_foreign_database(self._con, self.db_path)
        done = schema.applied_versions(self._con)
        if done:
            schema.refuse_newer(self.db_path, max(done))
        pending = [(version, path) for version, path in schema.migrations() if version not in done]
        if done and pending:
            self.schema_backup = schema.copy_before_upgrade(self._con, self.db_path, max(done))
        applied = []
        for version, path in pending:
            if version == _KEYPOINTS_MOVED_OUT:
                self._move_keypoints_out()
            with self._transaction():
                self._con.execute(path.read_text(encoding="utf-8"))
                self._con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [version, _now()])
            applied.append(version)
        if applied and self._keypoint_store is not None:
            # Opened mid-upgrade (to move keypoints out), before the catalogue had an id to bind.
            self._keypoint_store.close()
            self._keypoint_store = None
        return applied

    def _move_keypoints_out(self) -> None:
        """Copy the keypoints DuckDB kept into the keypoints file, before the migration that
        drops them; a kill in between copies them again on the next open."""
        # Its own cursor: writing the keypoints queries the catalogue too, which would end this one.
        cursor = self._con.cursor().execute("SELECT photo_id, detector, features FROM local_features")
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
        *,
        model_card: str | None = None,
    ) -> int:
        # Only one writer can hold the file, so any run still marked running has died.
        self._con.execute(_MARK_DEAD_RUNS)
        row = self._con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()
        run_id = int(row[0]) if row else 1
        self._con.execute(
            "INSERT INTO runs (run_id, started_at, status, model_version, distance_threshold, "
            "finprint_version, roots, decision_rule, model_card) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                _now(),
                RunStatus.RUNNING.value,
                model_version,
                distance_threshold,
                finprint_version,
                roots,
                decision_rule,
                model_card,
            ],
        )
        return run_id

    def last_model_card(self, model_version: str) -> str | None:
        """The card (JSON) the latest run with this model version decided with, when one kept it."""
        row = self._con.execute(
            "SELECT model_card FROM runs WHERE model_version = $m AND model_card IS NOT NULL "
            "ORDER BY run_id DESC LIMIT 1",
            {"m": model_version},
        ).fetchone()
        return None if row is None else str(row[0])

    def finish_run(self, run_id: int, counts: dict[str, int], seconds: dict[str, float]) -> None:
        self._con.execute(
            f"UPDATE runs SET finished_at = ?, status = '{RunStatus.FINISHED}', files_seen = ?, "
            "photos_new = ?, "
            "photos_failed = ?, individuals_new = ?, photos_matched = ?, photos_review = ?, "
            "individuals_resighted = ?, seconds_decode = ?, seconds_embed = ?, "
            "seconds_identify = ?, seconds_write = ? WHERE run_id = ?",
            [
                _now(),
                counts["files_seen"],
                counts["photos_new"],
                counts["photos_failed"],
                counts["individuals_new"],
                counts["photos_matched"],
                counts["photos_review"],
                counts["individuals_resighted"],
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
        """Keep these settings in the catalogue, each change in its history too; a value that did
        not change keeps its first run."""
        stored = self.stored_settings()
        changed = {name: value for name, value in values.items() if stored.get(name, object()) != value}
        if not changed:
            return
        rows: dict[str, list[Any]] = {
            "name": list(changed),
            "value": [json.dumps(value) for value in changed.values()],
            "source": [sources[name] for name in changed],
            "run_id": [run_id] * len(changed),
            "changed_at": [_now()] * len(changed),
        }
        with self._transaction():
            self._con.execute(
                "DELETE FROM catalogue_settings WHERE name IN (SELECT unnest($names))",
                {"names": list(changed)},
            )
            self._insert("catalogue_settings", rows)
            self._insert("settings_history", rows)

    def forget_setting(self, name: str, source: str) -> bool:
        """Stop keeping a setting (finprint's default applies again); False when it was not kept."""
        if name not in self.stored_settings():
            return False
        with self._transaction():
            self._con.execute("DELETE FROM catalogue_settings WHERE name = $n", {"n": name})
            self._con.execute(
                "INSERT INTO settings_history VALUES ($n, NULL, $s, $r, $at)",
                {"n": name, "s": source, "r": self.latest_run_id() or 0, "at": _now()},
            )
        return True

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

    def present_paths(self, photo_ids: list[str]) -> dict[str, list[str]]:
        """photo_id -> its paths not marked missing."""
        rows = self._con.execute(
            "SELECT photo_id, list(path ORDER BY path) FROM photo_paths "
            "WHERE photo_id IN (SELECT unnest($ids)) AND missing_since IS NULL GROUP BY photo_id",
            {"ids": photo_ids},
        ).fetchall()
        return {photo_id: list(paths) for photo_id, paths in rows}

    def survey_fields(self, photo_ids: list[str]) -> dict[str, dict[str, Any]]:
        """photo_id -> its survey date, site and camera as catalogued."""
        rows = self._con.execute(
            "SELECT photo_id, survey_date, site, camera FROM photos WHERE photo_id IN (SELECT unnest($ids))",
            {"ids": photo_ids},
        ).fetchall()
        return {row[0]: {"survey_date": row[1], "site": row[2], "camera": row[3]} for row in rows}

    def set_survey_fields(self, fields_by_photo: dict[str, dict[str, Any]]) -> None:
        """Give photos the survey date, site and camera their path now says, in one statement (a
        renamed season folder moves thousands)."""
        if not fields_by_photo:
            return
        ids = list(fields_by_photo)
        with self._transaction():
            self._con.execute(
                "UPDATE photos SET survey_date = m.survey_date, site = m.site, camera = m.camera FROM "
                "(SELECT unnest($ids) AS photo_id, unnest($dates) AS survey_date, unnest($sites) AS site, "
                "unnest($cameras) AS camera) m WHERE photos.photo_id = m.photo_id",
                {
                    "ids": ids,
                    "dates": [fields_by_photo[i]["survey_date"] for i in ids],
                    "sites": [fields_by_photo[i]["site"] for i in ids],
                    "cameras": [fields_by_photo[i]["camera"] for i in ids],
                },
            )

    def catalogued_paths(self, model_version: str) -> list[tuple[str, str | None, bool]]:
        """(photo_id, a present path or None, whether it has an embedding from `model_version`)
        of every catalogued photo."""
        rows = self._con.execute(
            "SELECT p.photo_id, min(pp.path) FILTER (WHERE pp.missing_since IS NULL), "
            "EXISTS (SELECT 1 FROM embeddings e WHERE e.photo_id = p.photo_id AND e.model_version = $model) "
            "FROM photos p JOIN photo_paths pp USING (photo_id) GROUP BY p.photo_id ORDER BY p.photo_id",
            {"model": model_version},
        ).fetchall()
        return [(photo_id, path, bool(embedded)) for photo_id, path, embedded in rows]

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
            if photo_ids:
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
        # Committed before the DuckDB batch that refers to them (see catalog.store.keypoints): a kill in
        # between leaves keypoints of photos not catalogued yet, which the rerun writes again.
        keypoints = self._keypoints()
        try:
            keypoints.put(detector, features)
        except sqlite3.Error as exc:
            raise CatalogueWriteError(keypoints.path, str(exc)) from exc
        identity = self._identity()
        if features and identity is not None and not identity[1] and not self.read_only:
            # From now on a missing keypoints file is missing, not merely not made yet.
            self._con.execute("UPDATE catalogue_identity SET keypoints_since = $t", {"t": _now()})
            self._identity_row = (identity[0], True)

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
            f"SELECT individual_id FROM individuals WHERE created_run > {_LAST_FINISHED_RUN} ORDER BY 1"
        ).fetchall()
        return [row[0] for row in rows]

    def individuals_of_last_night(self) -> list[str]:
        """Individuals the last finished night created (its killed attempts included) that still
        hold a photo."""
        rows = self._con.execute(
            f"SELECT individual_id FROM individuals i WHERE created_run <= {_LAST_FINISHED_RUN} "
            "AND created_run > (SELECT coalesce(max(run_id), 0) FROM runs "
            f"WHERE status = '{RunStatus.FINISHED}' "
            f"AND run_id < {_LAST_FINISHED_RUN}) "
            "AND EXISTS (SELECT 1 FROM sightings s WHERE s.individual_id = i.individual_id) ORDER BY 1"
        ).fetchall()
        return [row[0] for row in rows]

    def encounters_since_last_finished_run(self) -> list[tuple[str, str | None, str | None, str]]:
        """(encounter, side, crop, individual) of the photos with an encounter that this night
        catalogued so far, however many times it was interrupted: its links are made at its end."""
        rows = self._con.execute(
            "SELECT p.encounter, p.side, p.crop, s.individual_id FROM photos p "
            "JOIN sightings s USING (photo_id) WHERE p.encounter IS NOT NULL "
            f"AND p.run_id > {_LAST_FINISHED_RUN} ORDER BY 1, 2, 3, 4"
        ).fetchall()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def night_in_progress(self) -> bool:
        """Whether runs killed since the last finished one catalogued photos: a night that the
        next run must finish (group and link), even when it finds nothing new."""
        row = self._con.execute(
            f"SELECT EXISTS (SELECT 1 FROM photos WHERE run_id > {_LAST_FINISHED_RUN})"
        ).fetchone()
        return bool(row and row[0])

    def people_decisions_since_last_finished_run(self) -> list[Replaced]:
        """What each person's decision (not finprint's own) made since the night in progress
        began replaced: a night resumed after a kill must not decide those photos and entries
        again."""
        rows = self._con.execute(
            "SELECT previous FROM decisions WHERE undone_at IS NULL AND decided_by IS DISTINCT FROM $us "
            "AND made_at >= (SELECT coalesce(min(started_at), now()) FROM runs "
            f"WHERE run_id > {_LAST_FINISHED_RUN})",
            {"us": FINPRINT},
        ).fetchall()
        return [Replaced.from_json(row[0]) for row in rows]

    def photos_since_last_finished_run(self) -> list[TonightPhoto]:
        """The photos this night catalogued so far, however many times it was interrupted, with
        who each was decided to be, in photo id order: what its encounters are gathered from."""
        rows = self._con.execute(
            "SELECT p.photo_id, p.side, p.crop, p.survey_date, p.site, s.individual_id, s.status "
            f"FROM photos p JOIN sightings s USING (photo_id) WHERE p.run_id > {_LAST_FINISHED_RUN} "
            "ORDER BY 1"
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
            for created in Replaced.from_json(previous).created:
                digits = "".join(ch for ch in created if ch.isdigit())
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
                Replaced.from_json(row[4]).sightings,
            )
            for row in rows
        ]

    def undone_decision_count(self) -> int:
        row = self._con.execute("SELECT count(*) FROM decisions WHERE undone_at IS NOT NULL").fetchone()
        return int(row[0]) if row else 0

    def vectors_for(self, photo_ids: list[str], model_version: str) -> np.ndarray:
        """The embeddings of these photos, in the order given (KeyError naming a photo without one)."""
        if not photo_ids:
            return np.asarray([], dtype=np.float32)
        found = self._con.execute(
            # A join on the unnested ids: list_contains per row would compare every row with every
            # id, which at a million photos never ends. Fetched as numpy, not as Python lists: 0.3 s
            # for 100,000 vectors where fetchall takes 2.
            "SELECT wanted.position, e.vector FROM embeddings e "
            "JOIN (SELECT unnest($ids) AS photo_id, generate_subscripts($ids, 1) AS position) wanted "
            "USING (photo_id) WHERE e.model_version = $m ORDER BY wanted.position",
            {"m": model_version, "ids": photo_ids},
        ).fetchnumpy()
        if len(found["position"]) != len(photo_ids):
            held = {int(position) - 1 for position in found["position"]}
            raise KeyError(next(p for i, p in enumerate(photo_ids) if i not in held))
        return np.stack(list(found["vector"])).astype(np.float32, copy=False)

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
                self._insert("photos", insert_columns(photos, _PATH_FIELDS, run_id=run_id))
                self._insert_embeddings(model_version, [p.photo_id for p in photos], batch.vectors)
            paths = [PathRow.of(p) for p in batch.photos] + batch.known_content_paths
            if paths:
                self._insert("photo_paths", insert_columns(paths, run_id=run_id))
            if batch.individuals:
                self._insert_individuals(batch.individuals, run_id)
            if batch.sightings:
                self._insert("sightings", insert_columns(batch.sightings, run_id=run_id))
            if batch.superseded:
                self._supersede(batch.superseded)
            if batch.superseded or batch.displaced:
                self._update_from("photos", "replaced_by", "photo_id", batch.superseded + batch.displaced)
            if batch.features:
                self._insert_features(batch.detector, batch.features)
            if batch.errors:
                self._insert("errors", insert_columns(batch.errors, run_id=run_id, recorded_at=_now()))

    def _supersede(self, moves: list[tuple[str, str]]) -> None:
        """Each (old, new): `new` is `old` with new bytes and takes over its sighting, and every
        reference to it as an individual's first photo or a sighting's match. In bulk: a season's
        photos GPS-tagged at once arrive as whole batches of them."""
        pairs = {"old": [old for old, _ in moves], "new": [new for _, new in moves]}
        self._con.execute(
            "INSERT INTO sightings SELECT s.* REPLACE (m.new AS photo_id) FROM sightings s "
            "JOIN (SELECT unnest($old) AS old, unnest($new) AS new) m ON s.photo_id = m.old",
            pairs,
        )
        self._con.execute(
            "DELETE FROM sightings WHERE photo_id IN (SELECT unnest($old))", {"old": pairs["old"]}
        )
        self._update_from("sightings", "matched_photo_id", "matched_photo_id", moves)
        self._update_from("individuals", "first_photo_id", "first_photo_id", moves)

    def _update_from(self, table: str, column: str, key: str, moves: list[tuple[str, str]]) -> None:
        """Set `column` to each pair's second value in the rows whose `key` is its first, in one
        statement (table and column names are finprint's own, never a person's)."""
        self._con.execute(
            f"UPDATE {table} SET {column} = m.new FROM (SELECT unnest($old) AS old, unnest($new) AS new) m "
            f"WHERE {table}.{key} = m.old",
            {"old": [old for old, _ in moves], "new": [new for _, new in moves]},
        )

    def photo_ids_at(self, paths: list[str]) -> dict[str, str]:
        """path -> the photo catalogued there."""
        rows = self._con.execute(
            "SELECT path, photo_id FROM photo_paths WHERE path IN (SELECT unnest($paths))", {"paths": paths}
        ).fetchall()
        return {path: photo_id for path, photo_id in rows}

    def _insert_individuals(self, rows: list[IndividualRow], run_id: int) -> None:
        self._insert("individuals", insert_columns(rows, name=None, created_run=run_id))

    def _insert(self, table: str, columns: dict[str, list[Any]]) -> None:
        # One statement per table and batch: DuckDB unnests the column lists in bulk, where
        # executemany would pay a round trip per row.
        names = ", ".join(columns)
        selects = ", ".join(f"unnest(${name})" for name in columns)
        self._con.execute(f"INSERT INTO {table} ({names}) SELECT {selects}", columns)

    # -- reads ------------------------------------------------------------------------------

    def query(self, name: str, **params: Any) -> QueryResult:
        """Run the named query sql/queries/<name>.sql with DuckDB $name parameters. A table DuckDB
        cannot read (a block whose checksum fails) is an error that names the copy to restore."""
        try:
            return named.run_named(self._con, name, params)
        except duckdb.Error as exc:
            if "Corrupt database file" not in str(exc) and not isinstance(exc, duckdb.IOException):
                raise
            raise self._damaged(exc) from exc

    @staticmethod
    def named_queries() -> dict[str, tuple[str, list[str]]]:
        """name -> (what it answers, its $parameters), from the files in sql/queries."""
        return named.named_queries()

    def copy_query_to_parquet(self, name: str, out_path: Path, **params: Any) -> int:
        """Write a named query's result to a Parquet file; returns the number of rows."""
        return named.copy_named_to_parquet(self._con, name, out_path, params)

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

    def proposed_individuals(self, photo_ids: list[str]) -> dict[str, str | None]:
        """photo_id -> the individual its sighting's matched photo belongs to now (after merges):
        what identification proposed; None where it matched no photo."""
        rows = self._con.execute(
            "SELECT s.photo_id, m.individual_id FROM sightings s "
            "LEFT JOIN sightings m ON m.photo_id = s.matched_photo_id "
            "WHERE s.photo_id IN (SELECT unnest($ids))",
            {"ids": photo_ids},
        ).fetchall()
        return {
            photo_id: None if proposed is None else self._followed(str(proposed))
            for photo_id, proposed in rows
        }

    def photos_of(self, individual_id: str) -> list[str]:
        rows = self._con.execute(
            "SELECT photo_id FROM sightings WHERE individual_id = $i ORDER BY photo_id", {"i": individual_id}
        ).fetchall()
        return [row[0] for row in rows]

    def individual_fields(self, individual_ids: list[str]) -> dict[str, dict[str, str | None]]:
        """individual_id -> the fields a decision can change (name, merged_into, fish_id)."""
        rows = self._con.execute(
            "SELECT individual_id, name, merged_into, fish_id FROM individuals "
            "WHERE individual_id IN (SELECT unnest($ids))",
            {"ids": sorted(individual_ids)},
        ).fetchall()
        return {row[0]: {"name": row[1], "merged_into": row[2], "fish_id": row[3]} for row in rows}

    def record_decision(self, decision: DecisionRow) -> int:
        """Apply a decision and record it, with what it replaced and who made it, in one transaction."""
        with self._transaction():
            if decision.created:
                self._insert_individuals(decision.created, self.latest_run_id() or 0)
            self._set_sightings(decision.sightings)
            for individual, fields in decision.individuals.items():
                # Only the fields a decision names change; the others keep their value.
                self._set_individual_fields(
                    individual, {**decision.replaced.individuals[individual], **fields}
                )
            row = self._con.execute("SELECT coalesce(max(decision_id), 0) + 1 FROM decisions").fetchone()
            decision_id = int(row[0]) if row else 1
            self._con.execute(
                "INSERT INTO decisions (decision_id, made_at, action, individual_id, other_individual_id, "
                "photo_ids, name, reason, previous, decided_by) "
                "VALUES ($id, $at, $action, $i, $o, $photos, $name, $reason, $prev, $by)",
                {
                    "id": decision_id,
                    "at": _now(),
                    "action": decision.action,
                    "i": decision.individual_id,
                    "o": decision.other_individual_id,
                    "photos": sorted(decision.sightings),
                    "name": decision.name,
                    "reason": decision.reason,
                    "prev": decision.replaced.to_json(),
                    "by": decision.decided_by or _login(),
                },
            )
        return decision_id

    def _set_sightings(self, changes: dict[str, tuple[str, str]]) -> None:
        for photo_id, (individual, status) in changes.items():
            self._con.execute(
                "UPDATE sightings SET individual_id = $i, status = $s WHERE photo_id = $p",
                {"i": individual, "s": status, "p": photo_id},
            )

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

    def decision(self, decision_id: int) -> tuple[str, Replaced, bool] | None:
        """(action, what it replaced, whether it was undone) of a recorded decision."""
        row = self._con.execute(
            "SELECT action, previous, undone_at IS NOT NULL FROM decisions WHERE decision_id = $d",
            {"d": decision_id},
        ).fetchone()
        return None if row is None else (str(row[0]), Replaced.from_json(row[1]), bool(row[2]))

    def live_decisions_after(self, decision_id: int) -> list[tuple[int, Replaced]]:
        """The decisions after this one that were not undone, oldest first, with what each replaced."""
        rows = self._con.execute(
            "SELECT decision_id, previous FROM decisions WHERE decision_id > $d AND undone_at IS NULL "
            "ORDER BY decision_id",
            {"d": decision_id},
        ).fetchall()
        return [(int(row[0]), Replaced.from_json(row[1])) for row in rows]

    def sighting_counts(self, individual_ids: list[str], leaving_out: list[str]) -> dict[str, int]:
        """individual -> how many photos it holds besides those in `leaving_out` (none: left out)."""
        rows = self._con.execute(
            "SELECT individual_id, count(*) FROM sightings "
            "WHERE individual_id IN (SELECT unnest($ids)) AND photo_id NOT IN (SELECT unnest($moved)) "
            "GROUP BY individual_id ORDER BY individual_id",
            {"ids": individual_ids, "moved": leaving_out},
        ).fetchall()
        return {str(who): int(count) for who, count in rows}

    def undo_decision(self, decision_id: int, replaced: Replaced) -> None:
        """Put back what a decision replaced and mark it undone, in one transaction (which
        decisions may be undone is decided in catalog.decisions)."""
        with self._transaction():
            self._set_sightings(replaced.sightings)
            for individual, fields in replaced.individuals.items():
                self._set_individual_fields(individual, fields)
            if replaced.created:
                self._con.execute(
                    "DELETE FROM individuals WHERE individual_id IN (SELECT unnest($ids))",
                    {"ids": replaced.created},
                )
            self._con.execute(
                "UPDATE decisions SET undone_at = $at WHERE decision_id = $d",
                {"at": _now(), "d": decision_id},
            )

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
            "SELECT individual_id FROM individuals WHERE individual_id = $t", {"t": token}
        ).fetchone()
        if row is not None:
            # An id is always the individual it names, whatever names were given since.
            return self._followed(str(row[0]))
        named_ids = self._con.execute(
            "SELECT individual_id FROM individuals WHERE name = $t ORDER BY individual_id", {"t": token}
        ).fetchall()
        holders = sorted({self._followed(str(r[0])) for r in named_ids})
        if len(holders) > 1:
            raise FinprintError(
                f"{token!r} names {len(holders)} individuals ({', '.join(holders)}): give the FP- id, and "
                f"`finprint rename` one of them so that the name is unique."
            )
        return holders[0] if holders else None

    def _followed(self, individual_id: str) -> str:
        """The individual an id ends at after following merges."""
        current = individual_id
        for _ in range(100):  # a chain of merges, never a cycle, but stay bounded
            merged = self.merged_into(current)
            if merged is None:
                return current
            current = merged
        return current

    def integrity_problems(self) -> list[str]:
        """What is wrong inside the catalogue, each as a sentence; empty when all is well. Reads
        every table whole, so damage DuckDB can detect surfaces here rather than mid-night."""
        problems = [f"table {table} cannot be read ({why})" for table, why in unreadable_tables(self._con)]
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
            # A photo rewritten in place is kept as replaced, with neither (one overwritten by
            # another picture keeps its sighting, but not its path).
            "photo(s) with no sighting": "SELECT count(*) FROM photos p WHERE p.replaced_by IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.photo_id = p.photo_id)",
            "photo(s) with no path": "SELECT count(*) FROM photos p WHERE p.replaced_by IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM photo_paths pp WHERE pp.photo_id = p.photo_id)",
            "individual number(s) given twice": "SELECT count(*) - count(DISTINCT number) FROM individuals",
            "individual(s) holding no photo and merged into none (an empty entry)": "SELECT count(*) "
            "FROM individuals i WHERE i.merged_into IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM sightings s WHERE s.individual_id = i.individual_id)",
            "name(s) given to more than one individual": "SELECT count(*) FROM (SELECT name FROM individuals "
            "WHERE name IS NOT NULL AND merged_into IS NULL GROUP BY name HAVING count(*) > 1)",
            "name(s) that look like a catalogue id (they could hide that individual)": "SELECT count(*) "
            "FROM individuals WHERE regexp_full_match(name, 'FP-[0-9]+')",
        }
        for what, query in checks.items():
            row = self._con.execute(query).fetchone()
            if row and row[0]:
                problems.append(f"{row[0]} {what}")
        return problems + self._keypoints().problems()

    # -- the browser review ---------------------------------------------------------------

    def photo_paths(self, photo_id: str) -> list[str]:
        """Every path the photo was catalogued at, in order."""
        rows = self._con.execute(
            "SELECT path FROM photo_paths WHERE photo_id = $p ORDER BY path", {"p": photo_id}
        ).fetchall()
        return [row[0] for row in rows]

    def archive_roots(self) -> list[str]:
        """Every folder a run of this catalogue walked (as given, made absolute)."""
        rows = self._con.execute("SELECT DISTINCT unnest(roots) FROM runs ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def decisive_lines(self, photo_id: str) -> tuple[str | None, bytes | None]:
        """(matched photo, the keypoint lines its sighting was decided on) of a photo's sighting."""
        row = self._con.execute(
            "SELECT matched_photo_id, keypoint_lines FROM sightings WHERE photo_id = $p", {"p": photo_id}
        ).fetchone()
        return (None, None) if row is None else (row[0], None if row[1] is None else bytes(row[1]))

    def ruled_different(self) -> set[frozenset[str]]:
        """Pairs of entries a person said are different fish (decisions not undone)."""
        rows = self._con.execute(
            "SELECT individual_id, other_individual_id FROM decisions "
            "WHERE action = 'different' AND undone_at IS NULL"
        ).fetchall()
        return {frozenset((a, b)) for a, b in rows}

    def read_only_sql(self, statement: str, time_limit_s: float | None = None) -> QueryResult:
        """Run a statement on a read-only connection (for a person's SQL, open it `sandboxed`);
        writes are refused by DuckDB itself; stopped by Ctrl-C, or after `time_limit_s`."""
        return named.run_read_only(self._con, statement, time_limit_s)


def require_text_path(db_path: Path) -> None:
    """Refuse a catalogue path that is not UTF-8 text (a Latin-1 folder name): DuckDB cannot open it."""
    try:
        str(db_path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(db_path).decode("utf-8", errors="backslashreplace")
        raise FinprintError(
            f"{shown}: the catalogue's path is not UTF-8 text, which DuckDB cannot open. "
            "Give a --db path of plain UTF-8 text (rename the folder or file)."
        ) from None


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
