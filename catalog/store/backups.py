"""Copies of the catalogue file: the last finished night's, and what to restore when it is damaged."""

from __future__ import annotations

import shutil
from pathlib import Path

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
