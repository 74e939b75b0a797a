"""One table layout for every benchmark: a row per measure, a column per data set."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table


def bench_console() -> Console:
    """A terminal's own width, or a wide one when the table goes to a file or a CI log."""
    return Console() if sys.stdout.isatty() else Console(width=180)


def measures_table(title: str, columns: dict[str, dict[str, str]]) -> Table:
    """`columns` maps a data set's name to its measures, all sets measuring the same things."""
    table = Table(title=title)
    table.add_column("measure")
    for name in columns:
        table.add_column(name, justify="right")
    for measure in next(iter(columns.values())):
        table.add_row(measure, *(values[measure] for values in columns.values()))
    return table
