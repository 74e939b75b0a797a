"""Copies of the catalogue file: the last finished night's, and what to restore when it is damaged."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import duckdb

NIGHTLY_BACKUP_SUFFIX = ".last-night.bak"
PREVIOUS_BACKUP_SUFFIX = ".night-before.bak"


def nightly_backup_path(db_path: Path) -> Path:
    """Where the copy of the catalogue as the last finished night left it is kept."""
    return db_path.with_name(db_path.name + NIGHTLY_BACKUP_SUFFIX)


def previous_backup_path(db_path: Path) -> Path:
    """Where the nightly copy before the last one is kept: a second generation, in case the last
    night itself went wrong in a way no check could see."""
    return db_path.with_name(db_path.name + PREVIOUS_BACKUP_SUFFIX)


class DamagedCopy(Exception):
    """The copy just written cannot be read whole: the catalogue it was copied from is damaged."""


def unreadable_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(table, why) for each table of the open catalogue that cannot be read whole (DuckDB checks
    every block it reads against its checksum); empty when every table reads."""
    problems: list[tuple[str, str]] = []
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        try:
            con.execute(f'SELECT * FROM "{table}"').fetchall()
        except duckdb.Error as exc:
            problems.append((str(table), str(exc)))
    return problems


def _unreadable_copy(copy: Path) -> list[str]:
    """What in a copy of the catalogue cannot be read, as phrases; empty when it reads whole."""
    try:
        con = duckdb.connect(str(copy), read_only=True)
    except duckdb.Error as exc:
        return [f"the file does not open ({exc})"]
    try:
        return [f"table {table} ({why})" for table, why in unreadable_tables(con)]
    finally:
        con.close()


def write_nightly_backup(db_path: Path) -> Path:
    """Copy the closed catalogue beside itself, read the copy whole, and only then let it replace
    last night's copy (which becomes the night before's). A copy that does not read whole is
    deleted and DamagedCopy raised: a damaged catalogue never replaces a good copy. A kill or a
    full disk mid-copy leaves both earlier copies as they were, and no partial file behind."""
    target = nightly_backup_path(db_path)
    # A name of its own: two runs finishing at once must not write into one half-made copy.
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    try:
        shutil.copyfile(db_path, partial)
        problems = _unreadable_copy(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if problems:
        partial.unlink(missing_ok=True)
        raise DamagedCopy("; ".join(problems))
    if target.is_file():
        target.replace(previous_backup_path(db_path))
    partial.replace(target)
    return target


def restore_hint(db_path: Path) -> str:
    """What to do with a catalogue DuckDB cannot read: restore a copy (the one finprint keeps of
    the last finished night, and the ones made before a schema upgrade, are named here)."""
    nightly = nightly_backup_path(db_path)
    if not nightly.is_file():
        nightly = previous_backup_path(db_path)
    if nightly.is_file():
        return (
            f" If the file was damaged, copy {nightly} (the catalogue as a finished night left it, read "
            "whole when it was copied: decisions made since are lost, photos catalogued since are "
            f"catalogued again by the next index run) over {db_path.name}; the photos themselves are "
            "untouched."
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
