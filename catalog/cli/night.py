"""The night's commands: index, reindex, and the demo that shows one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from catalog.cli.common import (
    EXIT_PHOTO_ERRORS,
    PANEL_EXPERIMENTS,
    PANEL_THE_NIGHT,
    DbOption,
    DetectorOption,
    ModelOption,
    app,
    cli_settings,
    console,
    error_console,
    log_file,
    progress_bar,
    run_queries,
)


@app.command(rich_help_panel=PANEL_THE_NIGHT)
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
    from catalog.demo import demo_page, next_steps, run_demo
    from catalog.store import Store
    from catalog.synthetic import NO_TRAPS, Traps

    settings = cli_settings(model_path=model)
    console.print(f"Generating {individuals} fish over {surveys} surveys in {directory} ...")
    with progress_bar() as progress:
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
        console.print(demo_page(store, result))
    # soft_wrap: a command to copy must not be broken across lines.
    console.print(next_steps(result), markup=False, highlight=False, soft_wrap=True)


@app.command("index", rich_help_panel=PANEL_THE_NIGHT)
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
            rich_help_panel=PANEL_EXPERIMENTS,
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
    from catalog.night import index
    from catalog.store import Store

    settings = cli_settings(
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
    with progress_bar(quiet or as_json) as progress, log_file(log):
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
            console.print(report.run_report(*run_queries(store, result.run_id)))
    for warning in result.warnings:
        error_console.print(f"Warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    for failure in result.errors:
        error_console.print(
            f"Skipped {failure.path}: {failure.reason}", markup=False, highlight=False, soft_wrap=True
        )
    if result.errors:
        raise typer.Exit(EXIT_PHOTO_ERRORS)


@app.command(rich_help_panel=PANEL_THE_NIGHT)
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
    from catalog import report
    from catalog.night import reindex as run_reindex

    settings = cli_settings(db_path=db, model_path=model, batch_size=batch_size, detector=detector)
    with progress_bar() as progress:
        task = progress.add_task("Re-embedding", total=None)
        result = run_reindex(
            settings, lambda done, total: progress.update(task, completed=done, total=total), skip_unreadable
        )
    console.print(report.reindex_summary(result), markup=False, highlight=False)
