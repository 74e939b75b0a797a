"""Named queries (sql/queries/<name>.sql) and a person's own read-only SQL, run on an open catalogue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from catalog.errors import FinprintError, ReadOnlyQuery
from catalog.store.rows import QueryResult
from catalog.store.schema import sql_dir


def _query_file(name: str) -> Path:
    path = sql_dir() / "queries" / f"{name}.sql"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.sql")))
        raise FinprintError(f"no query named {name!r}. Known queries: {known}.")
    return path


def run_named(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any]) -> QueryResult:
    """Run sql/queries/<name>.sql with DuckDB $name parameters."""
    cursor = con.execute(_query_file(name).read_text(encoding="utf-8"), params)
    columns = [d[0] for d in cursor.description or []]
    return QueryResult(columns, cursor.fetchall())


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


def copy_named_to_parquet(
    con: duckdb.DuckDBPyConnection, name: str, out_path: Path, params: dict[str, Any]
) -> int:
    """Write a named query's result to a Parquet file; returns the number of rows."""
    query = _query_file(name).read_text(encoding="utf-8").strip().rstrip(";")
    # COPY takes the file name as a literal; quotes in it are doubled.
    target = str(out_path).replace("'", "''")
    con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)", params)
    row = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
    return int(row[0]) if row else 0


def run_read_only(con: duckdb.DuckDBPyConnection, statement: str) -> QueryResult:
    """Run a statement on a read-only connection (for a person's SQL, a sandboxed one); writes
    are refused by DuckDB itself."""
    try:
        cursor = con.execute(statement)
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
