"""The commands that ask the catalogue: history, report, listings, named queries, SQL, exports."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.cli.common import (
    PANEL_ASK,
    DbOption,
    FormatOption,
    OutputFormat,
    app,
    cli_settings,
    console,
    error_console,
    history_queries,
    listing,
    render,
    run_queries,
)
from catalog.errors import FinprintError
from catalog.settings import CATALOGUE_SETTINGS, with_catalogue_settings
from exporters.formats import ExportFormat


@app.command(rich_help_panel=PANEL_ASK)
def history(
    individual_id: Annotated[str, typer.Argument(help="The individual, e.g. FP-000012.")],
    db: DbOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show when and where one fish was seen: a timeline of its sightings (csv and json: the
    timeline's rows)."""
    from catalog import report
    from catalog.store import Store

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        summary, timeline = history_queries(store, individual_id, settings.db_path)
    if output is OutputFormat.TABLE:
        console.print(report.history_report(summary, timeline))
    else:
        render(timeline, output)


@app.command("report", rich_help_panel=PANEL_ASK)
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

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        run_id = run if run is not None else store.latest_run_id()
        if run_id is None:
            raise FinprintError(f"{settings.db_path}: no runs yet. Run `finprint index` first.")
        queries = run_queries(store, run_id)
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


@app.command(rich_help_panel=PANEL_ASK)
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

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query("individuals", site=site, since=since.date() if since else None)
    listing(result, output, f"{len(result.rows)} individual(s)")


@app.command(rich_help_panel=PANEL_ASK)
def queries() -> None:
    """List the named queries (sql/queries/*.sql) with what they answer and their parameters."""
    from catalog import report
    from catalog.store import Store

    console.print(report.named_queries_table(Store.named_queries()))


@app.command(rich_help_panel=PANEL_ASK)
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
    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query(name, **values)
    render(result, output)


@app.command(rich_help_panel=PANEL_ASK)
def sql(
    statement: Annotated[str, typer.Argument(help='A query, e.g. "SELECT * FROM sightings LIMIT 10".')],
    db: DbOption = None,
    output: FormatOption = OutputFormat.TABLE,
    time_limit_s: Annotated[
        float,
        typer.Option("--time-limit", min=0.1, help="Seconds the query may run before it is stopped."),
    ] = 300.0,
) -> None:
    """Run a SQL query on the catalogue, read-only (tables: photos, photo_paths, individuals,
    sightings, embeddings, runs, errors, decisions). Ctrl-C stops it."""
    from catalog.store import Store

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, sandboxed=True) as store:
        result = store.read_only_sql(statement, time_limit_s)
    render(result, output)


@app.command("export", rich_help_panel=PANEL_ASK)
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
    settings = cli_settings(db_path=db)
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
