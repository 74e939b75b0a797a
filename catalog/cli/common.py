"""The command line's shared parts: the app, its options, consoles, settings, progress and output."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from catalog import __version__
from catalog.errors import FinprintError, UnknownIndividual
from catalog.settings import Settings, load_settings
from catalog.vocabulary import KeypointDetector
from exporters.cells import inert

EXIT_USER_ERROR = 1


EXIT_PHOTO_ERRORS = 2


# `train --from-catalogue` wrote a model that is not better than the catalogue's on the
# individuals it held out: written for a look, not to be used.
EXIT_NOT_BETTER = 3


EXIT_INTERRUPTED = 130


# A command line finprint could not parse (sysexits' EX_USAGE). Typer, like click, would exit 2,
# which is finprint's "finished, but some photos could not be read": cron must tell them apart.
EXIT_USAGE = 64


# click's UsageError, reached through typer's public BadParameter: typer 0.26+ carries click inside
# itself (typer._click), earlier versions (which pyproject allows) use the click package.
UsageError = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")


UsageError.exit_code = EXIT_USAGE  # type: ignore[attr-defined]


app = typer.Typer(
    name="finprint",
    help=(
        "Catalogue individual fish from survey photos by their skin pattern.\n\n"
        "Start with `finprint demo`. Then: `finprint index PHOTOS --db CATALOG.duckdb` every night, "
        "`finprint history FP-000001` for one fish, "
        "`finprint export csv --out sightings.csv` for a spreadsheet."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


# Piped (what cron mails), Rich would lay tables out in 80 columns and cut ids to "FP-0000…": 100
# columns keep every id whole. A terminal, or COLUMNS, sets its own width.
PIPED_WIDTH = 100


# `finprint --help` groups the commands by who runs them and when.
PANEL_THE_NIGHT = "The night"


PANEL_DECIDE = "Decide"


PANEL_ASK = "Ask"


PANEL_MODEL = "Model"


PANEL_UPKEEP = "Upkeep"


# Options for measuring recipes and rules, not for a night's or a season's work.
PANEL_EXPERIMENTS = "Experiments"


console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)


error_console = Console(stderr=True)


def _print_version(asked: bool) -> None:
    if asked:
        console.print(f"finprint {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print finprint's version and stop."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file to read instead of finprint.toml in this folder (before the command: "
            "finprint --config /srv/wrasse/finprint.toml index ...). Also FINPRINT_CONFIG.",
        ),
    ] = None,
) -> None:
    """Catalogue individual fish from survey photos by their skin pattern."""
    global _config_file
    _config_file = config


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="The catalogue file (DuckDB). Default: finprint.duckdb here, or FINPRINT_DB_PATH.",
    ),
]


ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="ONNX model with a finprint model card. Default: the shipped model, or FINPRINT_MODEL_PATH.",
    ),
]


DetectorOption = Annotated[
    KeypointDetector | None,
    typer.Option(
        help="What verification finds and matches keypoints with: sift (OpenCV, the default) or "
        "xfeat (a learned network shipped with finprint; experimental: on the shared test sets its "
        "fused decisions merged different animals, see docs/identification.md; needs the model's "
        ".verify-xfeat.json from fit-verification --detector xfeat). A catalogue keeps one: set it "
        "in finprint.toml or FINPRINT_DETECTOR, and after a change run `finprint reindex "
        "--detector NAME` once to describe its photos.",
    ),
]


# Inline code: the help is rendered as markdown, where a bare <individual> is an HTML tag and vanishes.
LABELLED_DATA_HELP = "Labelled photos: `DATA/<individual>/*.jpg` or `<id>_<side>_*.jpg`."


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="table (for people), csv or json (for scripts and spreadsheets; in csv, text a "
        "spreadsheet would run as a formula starts with ').",
    ),
]


def listing(result: Any, output: OutputFormat, title: str) -> None:
    """A listing as a titled table for a person, or as CSV or JSON rows for a script."""
    from catalog import report

    if output is OutputFormat.TABLE:
        print_table(report.query_table(result, title))
    else:
        render(result, output)


def print_table(table: RenderableType) -> None:
    """A table at the terminal's width; into a pipe or a file, as wide as its longest cells, so
    that ids and paths are never broken across lines for grep, less or a log."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(width=_UNWRAPPED_WIDTH), table).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(table)
    finally:
        console.width = width


_UNWRAPPED_WIDTH = 100_000


class _LocalTimeFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")


@contextmanager
def log_file(path: Path | None) -> Iterator[None]:
    """--log FILE: what the library tells the "finprint" logger, appended to FILE while the
    command runs (a line per run, per warning and per skipped photo)."""
    if path is None:
        yield
        return
    logger = logging.getLogger("finprint")
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise FinprintError(f"{path}: cannot write the log ({exc.strerror or exc}).") from exc
    handler.setFormatter(_LocalTimeFormatter("%(asctime)s %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


# The --config file of this invocation (None: FINPRINT_CONFIG, else finprint.toml here).
_config_file: Path | None = None


def cli_settings(**overrides: Any) -> Settings:
    return load_settings(overrides, config=_config_file)


class _PhotosPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} photos/s" if task.speed else "")


def progress_bar(quiet: bool = False) -> Progress:
    # Disabled, not hidden: a hidden bar still ends its live display with a newline, and cron
    # mails any output at all.
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _PhotosPerSecond(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )


def run_queries(store: Any, run_id: int) -> tuple[Any, Any, Any]:
    return (
        store.query("run_summary", run_id=run_id),
        store.query("run_sightings", run_id=run_id),
        store.query("run_errors", run_id=run_id),
    )


def history_queries(store: Any, token: str, db_path: Path) -> tuple[Any, Any]:
    individual_id = store.resolve_individual(token)
    if individual_id is None:
        raise UnknownIndividual(token, db_path)
    if individual_id != token:
        console.print(f"{token} is now {individual_id} (renamed or merged).", markup=False, highlight=False)
    return store.query("individual", individual_id=individual_id), store.query(
        "history", individual_id=individual_id
    )


def render(result: Any, output: OutputFormat) -> None:
    from catalog import report

    if output is OutputFormat.TABLE:
        print_table(report.query_table(result))
    elif output is OutputFormat.CSV:
        buffer = io.StringIO()
        # Unix line ends on stdout: `... --format csv | xargs finprint history` must not see a \r.
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[csv_cell(v) for v in row] for row in result.rows])
        sys.stdout.write(buffer.getvalue())
    else:
        rows = [{c: plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")


def plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def csv_cell(value: Any) -> Any:
    """A CSV cell: a list (sites, photos) as its items joined by "; ", not Python's repr; text a
    spreadsheet would run as a formula (a site named =HYPERLINK(...)) starts with ' and stays text."""
    if isinstance(value, list | tuple):
        return inert("; ".join(str(plain(item)) for item in value))
    return inert(plain(value))


def say_interrupted() -> None:
    error_console.print(
        "Interrupted. Everything finished before the interruption is kept; "
        "run the same command again to carry on.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _terminated(signum: int, frame: object) -> None:
    # cron's timeout, systemd, kill: stop as Ctrl-C does, so that the batch in flight is rolled
    # back, the run is marked interrupted and no half-written file is left behind.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    try:
        app()
    except FinprintError as exc:
        error_console.print(f"Error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_USER_ERROR)
    except OSError as exc:
        # A file the command had to read or write and could not: the file and the reason, in one
        # line, as for the errors finprint names itself.
        where = f"{exc.filename}: " if exc.filename else ""
        error_console.print(
            f"Error: {where}{exc.strerror or exc}.", markup=False, highlight=False, soft_wrap=True
        )
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        say_interrupted()
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        # Typer turns Ctrl-C inside a command into a silent exit 130: the person at the terminal
        # (or the cron log) must still learn that nothing finished is lost.
        if exc.code == EXIT_INTERRUPTED:
            say_interrupted()
        raise
