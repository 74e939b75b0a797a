"""The catalogue on disk: a DuckDB file (rows, runs, decisions) and a keypoints file beside it.

One module per concern: `catalogue` (the open connection, its transactions, reads and writes),
`rows` (row types and the insert columns derived from them), `schema` (migrations), `named`
(sql/queries and a person's read-only SQL), `backups` (copies of the file), `keypoints` (the
SQLite keypoint cache). Callers import the names below from `catalog.store`.
"""

from catalog.store.backups import (
    NIGHTLY_BACKUP_SUFFIX,
    DamagedCopy,
    nightly_backup_path,
    previous_backup_path,
    restore_hint,
    write_nightly_backup,
)
from catalog.store.catalogue import Store
from catalog.store.rows import (
    Batch,
    CataloguedPhoto,
    DecisionRow,
    IndividualRow,
    KnownPath,
    LiveDecision,
    PathRow,
    PhotoError,
    PhotoRow,
    QueryResult,
    Replaced,
    SightingForTraining,
    SightingRow,
    TonightPhoto,
    individual_label,
)
from catalog.store.schema import sql_dir

__all__ = [
    "NIGHTLY_BACKUP_SUFFIX",
    "Batch",
    "CataloguedPhoto",
    "DamagedCopy",
    "DecisionRow",
    "IndividualRow",
    "KnownPath",
    "LiveDecision",
    "PathRow",
    "PhotoError",
    "PhotoRow",
    "QueryResult",
    "Replaced",
    "SightingForTraining",
    "SightingRow",
    "Store",
    "TonightPhoto",
    "individual_label",
    "nightly_backup_path",
    "previous_backup_path",
    "restore_hint",
    "sql_dir",
    "write_nightly_backup",
]
