"""One night, top to bottom: index() and the runner that takes each batch from decoding to the catalogue."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from catalog import __version__, verify
from catalog.decode import DecodedPhoto, decoded_batches
from catalog.embed import Embedder
from catalog.errors import FinprintError, ModelMismatch
from catalog.identify import decision_rule
from catalog.modelcard import ModelCard
from catalog.night.outcome import ProgressCallback, RunResult
from catalog.night.tonight import (
    RunIdentification,
    drop_non_finite,
    find_editions,
    new_content,
    old_versions,
    refuse_mixed_keypoints,
    verification_for,
)
from catalog.night.walk import (
    absolutised,
    after_the_walk,
    as_catalogued,
    find_files,
    links_left_out,
    of_one_species,
    pattern_coverage,
    record_unlistable,
    refuse_non_text_roots,
    unchanged,
)
from catalog.photos import FoundFile, PathFields, PathPattern, parse_path_fields
from catalog.settings import Settings, to_remember, with_catalogue_settings
from catalog.store import (
    Batch,
    DamagedCopy,
    KnownPath,
    PhotoError,
    Store,
    nightly_backup_path,
    write_nightly_backup,
)

_log = logging.getLogger("finprint")


def index(settings: Settings, roots: list[Path], on_progress: ProgressCallback | None = None) -> RunResult:
    """Catalogue every new photo under `roots` into the catalogue at settings.db_path."""
    started = time.perf_counter()
    # Paths are catalogued absolute, so that a run from cron, from another folder or by another
    # person finds the same paths (a relative root once doubled every path and export row).
    # abspath, not resolve: a symlinked archive keeps the path people know it by.
    roots = [Path(os.path.abspath(root)) for root in roots]
    refuse_non_text_roots(roots)
    unreadable_folders: list[str] = []
    left_out: list[str] = []
    found = find_files(roots, unreadable_folders, left_out)
    embedder = Embedder(settings.model_path)
    card = embedder.card
    # Checked before anything is written (a bad pattern or threshold never leaves a half-started
    # run or a new empty catalogue), and again once the catalogue's own settings are filled in.
    _run_rules(settings, card)
    with Store.open(settings.db_path) as store:
        roots, root_notes = as_catalogued(roots, store.archive_roots())
        if root_notes:  # walked again under the paths the catalogue knows
            unreadable_folders, left_out = [], []
            found = find_files(roots, unreadable_folders, left_out)
        # What the catalogue was indexed with, wherever tonight's run gave nothing else.
        settings, setting_notes = with_catalogue_settings(settings, store.stored_settings())
        path_pattern, threshold = _run_rules(settings, card)
        card_notes = _check_model(store, card)
        known_paths = absolutised(store, store.known_paths(), found)
        settings, todo, pattern_notes, files_unchanged = _tonights_files(
            settings, path_pattern, found, known_paths
        )
        verifying, why_not = verification_for(settings, card)
        if verifying is not None and todo:
            refuse_mixed_keypoints(store, verifying.detector, settings.db_path)
        fusion = verifying.fusion if verifying else None
        rule = decision_rule(threshold, settings.review_band_fraction, fusion, settings.group_encounters)
        run_id = store.start_run(
            card.model_version,
            threshold,
            __version__,
            [str(r) for r in roots],
            rule,
            model_card=card.to_json(),
        )
        result = RunResult(run_id, card.model_version, threshold, embedder.providers, files_seen=len(found))
        store.remember_settings(to_remember(settings), dict(settings.given), run_id)
        result.warnings.extend(
            root_notes + card_notes + links_left_out(left_out) + setting_notes + pattern_notes
        )
        record_unlistable(store, card.model_version, unreadable_folders, result)
        result.warnings.extend(_model_warnings(card, why_not))
        result.files_unchanged = files_unchanged
        seconds = _stage_seconds()
        # A rerun with nothing new and no interrupted night to finish (cron on a quiet night)
        # needs neither the graphs nor the identification state: building them was a third of
        # such a run over 10,000 photos.
        if todo or store.night_in_progress():
            tonight = RunIdentification(store, card, settings, threshold, path_pattern, verifying=verifying)
            result.warnings.extend(tonight.graph_notes)
            if verifying is not None:
                result.warnings.extend(store.keypoint_notes())
            night = _Night(store, embedder, tonight, known_paths, result, seconds)
            night.run(todo, card, settings, verifying.detector if verifying else None, on_progress)
            relocated = night.relocated
        else:
            relocated = {}
        after_the_walk(
            store,
            roots,
            found=found,
            known_paths=known_paths,
            unreadable_folders=unreadable_folders,
            relocated=relocated,
            result=result,
        )
        seconds["total"] = time.perf_counter() - started
        _finish_run(store, result, seconds)
    if settings.nightly_backup:
        _keep_nightly_copy(settings.db_path, result)
    _log_run(result)
    return result


def _tonights_files(
    settings: Settings,
    pattern: PathPattern | None,
    found: list[tuple[Path, FoundFile]],
    known: dict[str, KnownPath],
) -> tuple[Settings, list[tuple[Path, FoundFile]], list[str], int]:
    """The files new or changed since the catalogue saw them, of the catalogue's species, what
    was said of the path pattern, and how many files are unchanged; the settings with the species
    the first night chose."""
    todo = [(root, f) for root, f in found if not unchanged(known.get(str(f.path)), f)]
    notes = pattern_coverage(pattern, todo) if pattern is not None else []
    one_species = of_one_species(pattern, todo, settings.species_folder)
    if one_species.species_folder != settings.species_folder:
        # Kept like a setting from a file: the catalogue's species, whatever a later night finds.
        settings = replace(
            settings,
            species_folder=one_species.species_folder,
            given=(*settings.given, ("species_folder", "the first night's {species}")),
        )
    return settings, one_species.todo, notes + one_species.notes, len(found) - len(todo)


def _run_rules(settings: Settings, card: ModelCard) -> tuple[PathPattern | None, float]:
    """The path pattern and distance threshold a run decides with, refused when unusable."""
    path_pattern = PathPattern(settings.path_pattern) if settings.path_pattern else None
    threshold = settings.distance_threshold or card.threshold
    if card.embedding.matches_everything(threshold):
        raise FinprintError(
            f"distance threshold {threshold} would match every photo: this model's embeddings are "
            f"unit vectors, at most 2 apart. Leave it unset to use the model's own ({card.threshold})."
        )
    return path_pattern, threshold


def _check_model(store: Store, card: ModelCard) -> list[str]:
    """Refuse a model the catalogue was not indexed with, or one whose card was edited in a way
    that makes new embeddings incomparable with the catalogued ones; say so when only its
    threshold or calibration changed."""
    versions = store.catalogue_model_versions()
    if len(versions) > 1:
        raise FinprintError(
            f"{store.db_path}: a reindex to another model did not finish. "
            "Run `finprint reindex` with the new model again to complete it."
        )
    if versions and versions[0] != card.model_version:
        raise ModelMismatch(store.db_path, versions[0], card.model_version)
    before = store.last_model_card(card.model_version)
    if before is None:
        return []
    was, now = json.loads(before), json.loads(card.to_json())
    changed = sorted(
        key for key in set(was) | set(now) if key != "trained_on" and was.get(key) != now.get(key)
    )
    # What an embedding is made of: changed, tonight's vectors would not be comparable.
    incomparable = [key for key in changed if key in ("input", "embedding", "sides")]
    if incomparable:
        raise FinprintError(
            f"model {card.model_version}'s card changed since this catalogue last used it "
            f"({', '.join(incomparable)}), but its model_version did not: new photos' embeddings would "
            "not be comparable with the catalogued ones. Put the card back, or give the model a new "
            "model_version and run `finprint reindex` with it."
        )
    if changed:
        return [
            f"model {card.model_version}'s card changed since this catalogue last used it "
            f"({', '.join(changed)}) with the same model_version: tonight decides by the card as it is now"
        ]
    return []


def _stage_seconds() -> dict[str, float]:
    return {"decode": 0.0, "describe": 0.0, "embed": 0.0, "identify": 0.0, "write": 0.0}


@dataclass
class _Pending:
    """A batch between decoding and writing: its rows so far, its new photos, their vectors."""

    batch: Batch
    fresh: list[DecodedPhoto]
    files: int
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    # path -> (the photo catalogued there, the photo there now), for this batch's files that
    # changed since and whose old photo has no other path: edited in place, or overwritten.
    replacing: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class _Night:
    """An index run from its first batch to its last: each batch decoded, embedded, identified
    and written in one transaction, with the time each stage took."""

    store: Store
    embedder: Embedder
    tonight: RunIdentification
    known_paths: dict[str, KnownPath]
    result: RunResult
    seconds: dict[str, float] = field(default_factory=_stage_seconds)
    # photo id -> (each new path a known photo was found at tonight, that path's fields).
    relocated: dict[str, list[tuple[str, PathFields]]] = field(default_factory=dict)

    def run(
        self,
        todo: list[tuple[Path, FoundFile]],
        card: ModelCard,
        settings: Settings,
        describe: verify.Detector | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        """Every batch of `todo`, then the end of the night.

        The network embeds the next batch while this one is identified and written: onnxruntime
        lets go of the GIL, so the matching and the DuckDB writes no longer wait for it (nor it
        for them). Batches are still identified and written one at a time, in order."""
        done = 0
        batches = decoded_batches(
            todo, card, settings.workers, settings.batch_size, self.seconds, describe=describe
        )
        for pending in self._embedded_batches(batches):
            done += self.catalogue(pending)
            if on_progress:
                on_progress(done, len(todo))
        self.end(card, settings)

    def _embedded_batches(
        self, batches: Iterable[tuple[list[DecodedPhoto], list[PhotoError]]]
    ) -> Iterator[_Pending]:
        """Each decoded batch with its vectors, in order; the next one is embedded in the
        network's thread while the caller identifies and writes this one."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="finprint-embed") as network:
            waiting: tuple[_Pending, Future[np.ndarray]] | None = None
            for decoded, failures in batches:
                # The previous batch's vectors first: a photo its network turned to NaN leaves the
                # known contents before this batch is checked against them.
                ready = self._embedded(*waiting) if waiting is not None else None
                pending = self.prepare(decoded, failures)
                waiting = (pending, network.submit(self._embed, pending.fresh))
                if ready is not None:
                    yield ready
            if waiting is not None:
                yield self._embedded(*waiting)

    def prepare(self, decoded: list[DecodedPhoto], failures: list[PhotoError]) -> _Pending:
        """A decoded batch's rows so far: its failures, its changed files, and the photos whose
        content is new (the ones to embed)."""
        batch = Batch(errors=list(failures))
        self.result.errors.extend(failures)
        # A file changed since it was catalogued: its old sighting stays, the path moves on.
        batch.stale_paths = [str(d.found.path) for d in decoded if str(d.found.path) in self.known_paths]
        arrived = {str(d.found.path): d.photo_id for d in decoded}
        catalogued_at = self.store.photo_ids_at(batch.stale_paths) if batch.stale_paths else {}
        # Same content, the file only touched (a copy-back, a backup tool): nothing to follow.
        touched = {path for path, photo_id in catalogued_at.items() if arrived[path] == photo_id}
        # Kept with the batch: the next one is prepared before this one is written.
        replacing = {
            path: (old, arrived[path])
            for path, old in old_versions(self.store, catalogued_at).items()
            if path not in touched
        }
        fresh = new_content(decoded, self.tonight.known_ids, batch, self.result)
        # Known photos at a new path: what that path says (site, date, camera...), should the old
        # path turn out gone once the walk is done (a corrected folder name, a moved file).
        pattern = self.tonight.path_pattern
        new_ids = {f.photo_id for f in fresh}
        for item in decoded:
            path = str(item.found.path)
            if item.photo_id not in new_ids and path not in touched:
                fields = parse_path_fields(item.found.path, item.root, pattern)
                self.relocated.setdefault(item.photo_id, []).append((path, fields))
        return _Pending(batch, fresh, len(decoded) + len(failures), replacing=replacing)

    def _embed(self, fresh: list[DecodedPhoto]) -> np.ndarray:
        tick = time.perf_counter()
        vectors = (
            self.embedder.embed(np.stack([d.tensor for d in fresh]))
            if fresh
            else np.zeros((0, 1), np.float32)
        )
        self.seconds["embed"] += time.perf_counter() - tick
        return vectors

    def _embedded(self, pending: _Pending, vectors: Future[np.ndarray]) -> _Pending:
        pending.fresh, pending.vectors = drop_non_finite(
            pending.fresh, vectors.result(), self.tonight.known_ids, pending.batch, self.result
        )
        return pending

    def catalogue(self, pending: _Pending) -> int:
        """One embedded batch identified and written whole or not at all; returns its file count."""
        result = self.result
        tick = time.perf_counter()
        editions = find_editions(self.store, self.tonight, pending.replacing, pending.fresh, pending.vectors)
        self.tonight.editions = editions
        # The others were overwritten by another picture: their sighting stays, as it happened.
        pending.batch.displaced = [
            (old, new) for old, new in pending.replacing.values() if new not in editions
        ]
        self.tonight.identify_batch(pending.fresh, pending.vectors, pending.batch, result)
        self.seconds["identify"] += time.perf_counter() - tick
        tick = time.perf_counter()
        self.store.write_batch(result.run_id, result.model_version, pending.batch)
        self.seconds["write"] += time.perf_counter() - tick
        result.photos_new += len(pending.fresh)
        return pending.files

    def end(self, card: ModelCard, settings: Settings) -> None:
        """After the last batch: keep the graphs, decide the night's groups, link its encounters."""
        store, tonight, result = self.store, self.tonight, self.result
        try:
            tonight.identifier.save(tonight.graph_dir, card.model_version)
        except OSError as exc:
            # The graphs are a cache of what DuckDB already holds: the night still finishes.
            result.warnings.append(
                f"the HNSW graphs could not be saved ({exc}); the next run rebuilds them from the catalogue"
            )
        if settings.group_encounters:
            tick = time.perf_counter()
            result.photos_regrouped, result.individuals_folded = _regroup_night(
                store, card, settings, tonight
            )
            self.seconds["group"] = time.perf_counter() - tick
        result.links_made = _link_encounters(store, tonight.encounters)
        if result.photos_edited:
            result.warnings.append(
                f"{result.photos_edited} catalogued photo(s) were rewritten in place with the same picture "
                "(EXIF or GPS written, a re-export): each keeps its sighting and decisions, under its new "
                "content's id"
            )


def _finish_run(store: Store, result: RunResult, seconds: dict[str, float]) -> None:
    """Mark the run finished with its counts and times. The counts of individuals and sightings
    are read from the catalogue once the night is done, so that its log line, its --json and its
    report (which shows the run's row) give the same numbers."""
    result.seconds = seconds
    counted = store.query("run_counts", run_id=result.run_id).records()[0]
    result.individuals_new = int(counted["individuals_new"])
    result.matched = int(counted["photos_matched"])
    result.review = int(counted["photos_review"])
    result.individuals_resighted = int(counted["individuals_resighted"])
    counts = {
        "files_seen": result.files_seen,
        "photos_new": result.photos_new,
        "photos_failed": len(result.errors),
        "individuals_new": result.individuals_new,
        "photos_matched": result.matched,
        "photos_review": result.review,
        "individuals_resighted": result.individuals_resighted,
    }
    store.finish_run(result.run_id, counts, seconds)


def _model_warnings(card: ModelCard, why_not_verified: str | None) -> list[str]:
    """What the night's report must say about the model it decides with."""
    warnings = []
    if card.trained_on.get("synthetic_only"):
        warnings.append(
            f"model {card.model_version} has only seen synthetic fish; on real photos its threshold "
            "is not calibrated and different fish get merged. Train a model on your own labelled "
            "photos (finprint train) and index with --model before trusting matches."
        )
    if why_not_verified:
        warnings.append(why_not_verified)
    return warnings


def _keep_nightly_copy(db_path: Path, result: RunResult) -> None:
    try:
        write_nightly_backup(db_path)
    except DamagedCopy as exc:
        kept = nightly_backup_path(db_path)
        result.warnings.append(
            f"the catalogue {db_path} cannot be read whole ({exc}), so it was not copied"
            + (f" over the last good nightly copy, {kept}" if kept.is_file() else "")
            + f". Run `finprint check --db {db_path}`"
            + (", and restore that copy if check finds the damage." if kept.is_file() else ".")
        )
    except OSError as exc:
        result.warnings.append(
            f"the nightly copy of the catalogue could not be written ({exc}); the catalogue itself is "
            "complete. Free some disk space, or set nightly_backup = false."
        )


def _log_run(result: RunResult) -> None:
    """The run for the operator's log: its counts, what it warned of, each photo it skipped."""
    _log.info(
        "run %d: %d files, %d new photos, %d new individuals, %d re-sightings of %d individuals, "
        "%d to review, %d unreadable, %d missing, %d regrouped",
        result.run_id, result.files_seen, result.photos_new, result.individuals_new, result.matched,
        result.individuals_resighted, result.review, len(result.errors), result.paths_missing,
        result.photos_regrouped,
    )  # fmt: skip
    for warning in result.warnings:
        _log.warning("run %d: %s", result.run_id, warning)
    for failure in result.errors:
        _log.warning("run %d: skipped %r: %s", result.run_id, failure.path, failure.reason)


def _regroup_night(
    store: Store, card: ModelCard, settings: Settings, tonight: RunIdentification
) -> tuple[int, int]:
    """Decide the night's groups (catalog.encounters), each recorded as one automatic decision;
    returns the photos moved or taken out of review, and the individuals first seen tonight left
    with no photo (merged away)."""
    from catalog.decisions import regroup
    from catalog.encounters import group_tonight

    identifier = tonight.identifier
    threshold = identifier.distance_threshold
    # On the embedding alone, also when photos were verified one by one: grouped on the fused
    # score, crops of two fish cut from one video frame (their pixels overlap, so their keypoints
    # agree) were joined, 4 wrong merges on fs48 in `just bench nights`; on distances, none.
    decisions = group_tonight(
        store,
        card.model_version,
        threshold,
        threshold * settings.review_band_fraction,
        partition_of=tonight.partition_of,
        nearest_known=identifier.nearest_individuals,
    )
    # A night resumed after a kill: what a person decided in between stands.
    decided_photos: set[str] = set()
    decided_entries: set[str] = set()
    for replaced in store.people_decisions_since_last_finished_run():
        decided_photos |= set(replaced.sightings)
        decided_entries |= set(replaced.individuals) | set(replaced.created)
    if decided_photos or decided_entries:
        owners = store.sighting_states([p for d in decisions for p in d.photo_ids])
        decisions = [
            d
            for d in decisions
            if not decided_photos & set(d.photo_ids)
            and not decided_entries & ({d.keep} | {owners[p][0] for p in d.photo_ids if p in owners})
        ]
    emptied_in_all = 0
    for decision in decisions:
        emptied = regroup(store, decision.keep, list(decision.photo_ids), decision.reason)
        emptied_in_all += len(emptied)
    return sum(len(decision.photo_ids) for decision in decisions), emptied_in_all


def _link_encounters(
    store: Store, encounters: dict[str, dict[tuple[str | None, str | None], set[str]]]
) -> int:
    """Link the catalogue entries of each encounter (one fish: its flanks and crops), recorded as
    undoable decisions. An encounter whose photos of one view went to two entries holds two
    fish or a wrong match, so nothing in it is linked."""
    from catalog.decisions import link
    from catalog.vocabulary import FINPRINT

    made = 0
    for encounter, seen in sorted(encounters.items()):
        # The night's grouping may have folded some of these entries into others since.
        views = {view: {store.resolve_individual(e) or e for e in entries} for view, entries in seen.items()}
        if any(len(entries) > 1 for entries in views.values()):
            continue
        entries = sorted({entry for view in views.values() for entry in view})
        for other in entries[1:]:
            try:
                link(store, entries[0], other, f"automatic: both in encounter {encounter}", FINPRINT)
                made += 1
            except FinprintError:
                pass  # already linked
    return made
