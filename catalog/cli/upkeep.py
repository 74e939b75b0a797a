"""Upkeep: settings a catalogue keeps, schema upgrades, the consistency check."""

from __future__ import annotations

from typing import Annotated

import typer

from catalog.cli.common import (
    PANEL_UPKEEP,
    DbOption,
    FormatOption,
    OutputFormat,
    app,
    cli_settings,
    console,
    listing,
)
from catalog.errors import FinprintError

settings_app = typer.Typer(
    help="Show the settings a catalogue keeps (what every run on it is decided with: layout, "
    "species, threshold, verification...), their history, and change one for good.",
    no_args_is_help=False,
)


app.add_typer(settings_app, name="settings", rich_help_panel=PANEL_UPKEEP)


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

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        result = store.query("settings_history") if history else settings_listing(store.query("settings"))
    listing(result, output, f"Settings kept by {settings.db_path}" + (": history" if history else ""))


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
    settings = cli_settings(db_path=db)
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
    settings = cli_settings(db_path=db)
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


@app.command(rich_help_panel=PANEL_UPKEEP)
def migrate(db: DbOption = None) -> None:
    """Upgrade a catalogue made by an older finprint to this version's schema (index does this too).
    A copy of the catalogue is written beside it first."""
    from catalog.store import Store

    settings = cli_settings(db_path=db)
    if not settings.db_path.is_file():
        from catalog.errors import CatalogueNotFound

        raise CatalogueNotFound(settings.db_path)
    with Store.open(settings.db_path) as store:
        backup = store.schema_backup
    console.print(f"Upgraded; the old catalogue is kept as {backup}." if backup else "Already up to date.")


@app.command(rich_help_panel=PANEL_UPKEEP)
def check(db: DbOption = None) -> None:
    """Read the whole catalogue and check that its tables agree with each other (every sighting's
    individual exists, no photo without a sighting or a path, ...). Exit 0 when all is well, 1
    with what is wrong and the copy to restore from."""
    from catalog.store import Store, restore_hint

    settings = cli_settings(db_path=db)
    with Store.open(settings.db_path, read_only=True) as store:
        problems = store.integrity_problems()
    if not problems:
        console.print(f"{settings.db_path}: all tables read, nothing inconsistent.")
        return
    raise FinprintError(f"{settings.db_path}: " + "; ".join(problems) + "." + restore_hint(settings.db_path))
