"""The demo: generate a synthetic survey archive, catalogue it, and score it against the truth."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Group, RenderableType
from rich.text import Text

from catalog.errors import FinprintError
from catalog.night import ProgressCallback, RunResult, graph_directory, index
from catalog.offline.metrics import ClusteringScores, clustering_scores
from catalog.settings import Settings
from catalog.store import QueryResult, Store
from catalog.synthetic import GROUND_TRUTH_FILE, NO_TRAPS, Traps, generate_archive, read_ground_truth
from exporters.selection import ExportFilter, photo_rows

ARCHIVE_FOLDER = "archive"
DEMO_DB = "demo.duckdb"
_MARKER = ".finprint-demo"


@dataclass(frozen=True)
class DemoResult:
    """What the demo made and found."""

    archive: Path
    db_path: Path
    run: RunResult
    scores: ClusteringScores
    most_seen: str
    movers: QueryResult
    by_site: QueryResult


def prepare_demo_dir(demo_dir: Path) -> None:
    """Start clean: a previous demo is replaced, any other non-empty folder is left alone."""
    if demo_dir.exists() and any(demo_dir.iterdir()):
        if not (demo_dir / _MARKER).exists():
            raise FinprintError(
                f"{demo_dir}: folder is not empty and was not made by `finprint demo`. "
                "Give an empty or new folder."
            )
        shutil.rmtree(demo_dir / ARCHIVE_FOLDER, ignore_errors=True)
        (demo_dir / DEMO_DB).unlink(missing_ok=True)
        shutil.rmtree(graph_directory(demo_dir / DEMO_DB), ignore_errors=True)
    demo_dir.mkdir(parents=True, exist_ok=True)
    (demo_dir / _MARKER).write_text("made by finprint demo\n", encoding="utf-8")


def run_demo(
    demo_dir: Path,
    settings: Settings,
    *,
    n_individuals: int = 24,
    n_surveys: int = 6,
    seed: int = 0,
    traps: Traps = NO_TRAPS,
    on_progress: ProgressCallback | None = None,
) -> DemoResult:
    # Photos are catalogued by absolute path: the scoring compares those with the archive's.
    demo_dir = demo_dir.resolve()
    prepare_demo_dir(demo_dir)
    archive = demo_dir / ARCHIVE_FOLDER
    generate_archive(archive, n_individuals=n_individuals, n_surveys=n_surveys, seed=seed, traps=traps)
    db_path = demo_dir / DEMO_DB
    run = index(replace(settings, db_path=db_path), [archive], on_progress)
    with Store.open(db_path, read_only=True) as store:
        scores = score_catalogue(store, archive)
        movers = store.query("movers")
        by_site = store.query("sightings_by_site")
        counts = store.query("most_seen", limit=1)
    return DemoResult(archive, db_path, run, scores, counts.rows[0][0], movers, by_site)


def score_catalogue(store: Store, archive: Path) -> ClusteringScores:
    """Compare the catalogue's individuals with the archive's ground truth, photo by photo."""
    truth = {row.path: row.identity_key for row in read_ground_truth(archive / GROUND_TRUTH_FILE)}
    photos = photo_rows(store, ExportFilter())
    path_column = photos.columns.index("path")
    individual_column = photos.columns.index("individual_id")
    truth_labels, found_labels = [], []
    for row in photos.rows:
        relative = Path(row[path_column]).relative_to(archive).as_posix()
        if relative in truth:
            truth_labels.append(truth[relative])
            found_labels.append(row[individual_column])
    return clustering_scores(truth_labels, found_labels)


def demo_page(store: Store, result: DemoResult) -> RenderableType:
    """What the demo shows of its catalogue: the night's report, the most-seen fish's life history,
    the fish seen at several sites, individuals per site and survey, and the recovery scores."""
    from catalog import report
    from catalog.offline import tables

    run_id = result.run.run_id
    fish = result.most_seen
    return Group(
        report.run_report(
            store.query("run_summary", run_id=run_id),
            store.query("run_sightings", run_id=run_id),
            store.query("run_errors", run_id=run_id),
        ),
        *(Text(f"Note: {warning}") for warning in result.run.warnings),
        Text.from_markup(
            f"\n[bold]Life history of the most-seen fish[/] (finprint history {fish} --db {result.db_path})"
        ),
        report.history_report(
            store.query("individual", individual_id=fish), store.query("history", individual_id=fish)
        ),
        report.query_table(result.movers, "Fish seen at more than one site (finprint query: movers)"),
        report.query_table(result.by_site, "Individuals per site and survey"),
        tables.clustering_table(result.scores, "How well the catalogue recovered the true fish"),
    )


def next_steps(result: DemoResult) -> str:
    """Where the demo left its archive and catalogue, and what to try on them."""
    return (
        f"\nArchive: {result.archive}\nCatalogue: {result.db_path}\n"
        f'Try: finprint sql "SELECT * FROM individuals LIMIT 5" --db {result.db_path}\n'
        f"Settle the doubtful matches in your browser: finprint review --web --db {result.db_path}"
    )
