"""The commands by which a person decides: review (in a terminal or a browser), confirm, reject,
merge, split, rename, link, different, undo, and the look-alikes to decide on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.cli.common import (
    PANEL_DECIDE,
    DbOption,
    FormatOption,
    ModelOption,
    OutputFormat,
    app,
    cli_settings,
    console,
    error_console,
    listing,
    print_table,
    render,
)
from catalog.errors import FinprintError

ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why: kept with the decision for whoever reads it later.")
]


@app.command(rich_help_panel=PANEL_DECIDE)
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

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        queue = store.query("review_queue")
    if output is not OutputFormat.TABLE:
        render(queue, output)
        return
    if not queue.rows:
        console.print("Nothing to review.")
        return
    # A terminal has room for the question and its evidence; csv and json carry every column.
    shown = ["photo", "path", "question", "distance", "probability", "inliers", "site", "survey_date"]
    print_table(report.query_table(queue.select(shown), f"{len(queue.rows)} sighting(s) to review"))
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
    settings = cli_settings(db_path=db, model_path=model)
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

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path) as store:
        decision_id = decide(store)
    console.print(f"Recorded as decision {decision_id}; `finprint undo {decision_id}` takes it back.")


@app.command(rich_help_panel=PANEL_DECIDE)
def confirm(
    photos: Annotated[list[str], typer.Argument(help="Photo paths as catalogued, or photo id prefixes.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """finprint's proposal for these photos is right: a match is confirmed; a photo kept apart
    from a proposed individual ("kept apart from X: same fish?" in `finprint review`) joins X."""
    from catalog import decisions

    _decide(db, lambda store: decisions.confirm(store, photos, reason))


@app.command(rich_help_panel=PANEL_DECIDE)
def reject(
    photos: Annotated[list[str], typer.Argument(help="Photo paths as catalogued, or photo id prefixes.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """finprint's proposal for these photos is wrong: a matched photo becomes a new individual; a
    photo kept apart from a proposed individual stays apart, where it is."""
    from catalog import decisions

    _decide(db, lambda store: decisions.reject(store, photos, reason))


@app.command(rich_help_panel=PANEL_DECIDE)
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


@app.command(rich_help_panel=PANEL_DECIDE)
def split(
    individual_id: Annotated[str, typer.Argument(help="The individual that holds another fish's photos.")],
    photos: Annotated[list[str], typer.Argument(help="The photos that show the other fish.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """Some photos of an individual show another fish: they become one new individual."""
    from catalog import decisions

    _decide(db, lambda store: decisions.split(store, individual_id, photos, reason))


@app.command(rich_help_panel=PANEL_DECIDE)
def rename(
    individual_id: Annotated[str, typer.Argument(help="The individual, e.g. FP-000012.")],
    name: Annotated[str, typer.Argument(help="Its name, e.g. a PIT tag number.")],
    reason: ReasonOption = "",
    db: DbOption = None,
) -> None:
    """Give an individual a name, such as its physical tag number. Its FP- id never changes."""
    from catalog import decisions

    _decide(db, lambda store: decisions.rename(store, individual_id, name, reason))


@app.command(rich_help_panel=PANEL_DECIDE)
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


@app.command(rich_help_panel=PANEL_DECIDE)
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


@app.command(rich_help_panel=PANEL_DECIDE)
def undo(
    decision_id: Annotated[int, typer.Argument(help="The decision's number (see `finprint decisions`).")],
    db: DbOption = None,
) -> None:
    """Take a decision back, restoring what it changed. Later decisions must be undone first."""
    from catalog import decisions
    from catalog.store import Store

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path) as store:
        action = decisions.undo(store, decision_id)
    console.print(f"Undid decision {decision_id} ({action}).")


@app.command("decisions", rich_help_panel=PANEL_DECIDE)
def decisions_command(db: DbOption = None, output: FormatOption = OutputFormat.TABLE) -> None:
    """List every decision on the catalogue, newest first, with time and reason: people's, and
    the automatic ones (encounter links, the night's groups), which say "automatic"."""
    from catalog.store import Store

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query("decisions")
    listing(result, output, "Decisions")


@app.command("lookalikes", rich_help_panel=PANEL_DECIDE)
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

    settings = cli_settings(db_path=db, model_path=model)
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
        render(result, output)
        return
    if not found:
        console.print("No look-alikes: no other individual of the same flank and crop is catalogued.")
        return
    title = (
        f"Look-alikes of {len({f.individual_id for f in found})} individual(s), nearest first "
        f"(matches are decided automatically under distance {card.threshold})"
    )
    print_table(report.query_table(result, title))
    console.print(
        "Same fish: `finprint merge LOOK_ALIKE INDIVIDUAL` (the look-alike keeps its id); "
        "`finprint history ID` shows either one's sightings.",
        markup=False,
        highlight=False,
    )
