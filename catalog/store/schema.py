"""The catalogue schema: the migrations in sql/, which ones a file has had, the copy before an upgrade."""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path

import duckdb

from catalog.errors import FinprintError

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def sql_dir() -> Path:
    """sql/ ships inside the wheel as catalog/sql; in a source checkout it sits beside catalog/."""
    package = Path(__file__).parent.parent
    installed = package / "sql"
    return installed if installed.is_dir() else package.parent / "sql"


@cache
def migrations() -> tuple[tuple[int, Path], ...]:
    """(version, file) of every migration finprint ships, oldest first (they do not change while
    finprint runs: listed once, not at every open)."""
    return tuple(
        sorted(
            (int(m[1]), path)
            for path in (sql_dir() / "migrations").iterdir()
            if (m := _MIGRATION_NAME.match(path.name))
        )
    )


def newest_schema() -> int:
    """The schema version this finprint writes."""
    available = migrations()
    return available[-1][0] if available else 0


def refuse_foreign_database(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    """A DuckDB file with tables but no finprint migration history is someone else's data:
    turning it into a catalogue would mix finprint's tables into it."""
    tables = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        ).fetchall()
    }
    if tables and "schema_migrations" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise FinprintError(
            f"{db_path}: a DuckDB database that is not a finprint catalogue (it holds {shown}). "
            "Give --db a new file name, or the catalogue you meant."
        )


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """The migrations this catalogue has had (creating the bookkeeping table on a new file)."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "applied_at TIMESTAMPTZ NOT NULL)"
    )
    return {int(row[0]) for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


def refuse_newer(db_path: Path, version: int) -> None:
    """A catalogue written by a newer finprint is never opened by this one."""
    newest = newest_schema()
    if version > newest:
        raise FinprintError(
            f"{db_path}: catalogue schema {version} is newer than this finprint knows ({newest}). "
            "Upgrade finprint to open it."
        )


def check_schema_readable(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    """A read-only open cannot upgrade: say so instead of failing on a missing column."""
    try:
        row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    except duckdb.CatalogException as exc:
        raise FinprintError(f"{db_path}: not a finprint catalogue (no schema_migrations table).") from exc
    version = int(row[0]) if row and row[0] is not None else 0
    refuse_newer(db_path, version)
    if version < (newest := newest_schema()):
        raise FinprintError(
            f"{db_path}: catalogue made by an older finprint (schema {version}, now {newest}). "
            f"Upgrade it once (a backup copy is written first): finprint migrate --db {db_path}"
        )


def copy_before_upgrade(con: duckdb.DuckDBPyConnection, db_path: Path, version: int) -> Path:
    """Copy an existing catalogue before its schema changes, so a failed or unwanted upgrade can
    always be rolled back by hand."""
    con.execute("CHECKPOINT")
    backup = db_path.with_name(f"{db_path.name}.schema{version}.bak")
    try:
        shutil.copy2(db_path, backup)
    except OSError as exc:
        raise FinprintError(
            f"{db_path}: could not write the backup {backup} before upgrading the schema "
            f"({exc}). Free some disk space or make the folder writable, then run again."
        ) from exc
    return backup
