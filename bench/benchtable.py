"""One table layout for every benchmark: a row per measure, a column per data set."""

from __future__ import annotations

from rich.table import Table


def measures_table(title: str, columns: dict[str, dict[str, str]]) -> Table:
    """`columns` maps a data set's name to its measures, all sets measuring the same things."""
    table = Table(title=title)
    table.add_column("measure")
    for name in columns:
        table.add_column(name, justify="right")
    for measure in next(iter(columns.values())):
        table.add_row(measure, *(values[measure] for values in columns.values()))
    return table
