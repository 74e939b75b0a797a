"""Named queries (sql/queries/<name>.sql) and a person's own read-only SQL, run on an open catalogue."""

from __future__ import annotations

import re
import threading
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


def run_read_only(
    con: duckdb.DuckDBPyConnection, statement: str, time_limit_s: float | None = None
) -> QueryResult:
    """Run a statement on a read-only connection (for a person's SQL, a sandboxed one); writes
    are refused by DuckDB itself. It runs in a thread of its own, so that Ctrl-C (and
    `time_limit_s`) stop it: DuckDB's own loop does not look at Python's signals."""
    outcome: dict[str, Any] = {}
    # An Event, not Thread.join: a join that Ctrl-C interrupts may return early ever after.
    done = threading.Event()

    def run() -> None:
        try:
            cursor = con.execute(statement)
            columns = [d[0] for d in cursor.description or []]
            outcome["result"] = QueryResult(columns, cursor.fetchall() if columns else [])
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    try:
        finished = done.wait(time_limit_s)
    except KeyboardInterrupt:
        con.interrupt()
        done.wait()
        raise
    if not finished:
        con.interrupt()
        done.wait()
        raise FinprintError(
            f"the query ran past {time_limit_s:g} s and was stopped. Narrow it (a WHERE, a LIMIT), or "
            "give it longer with --time-limit."
        )
    if "error" in outcome:
        raise _refusal(outcome["error"]) from outcome["error"]
    result: QueryResult = outcome["result"]
    return result


def _refusal(error: BaseException) -> BaseException:
    """A person's SQL that failed, as the one-line error that says why."""
    detail = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, duckdb.InvalidInputException) and "read-only" in str(error):
        return ReadOnlyQuery(detail)
    if isinstance(error, duckdb.PermissionException):
        return FinprintError(
            f"SQL refused: finprint sql reads the catalogue only, no other file ({detail}). "
            "Use `finprint export` to write files."
        )
    if isinstance(error, duckdb.Error):
        return FinprintError(f"SQL error: {error}")
    return error
