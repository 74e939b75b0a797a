"""The nightly index: walk -> decode -> embed -> identify -> write, one transaction per batch."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalog import __version__, detectors, verify
from catalog import fusion as fusion_module
from catalog.decode import DecodedPhoto, decoded_batches
from catalog.embed import Embedder
from catalog.errors import ArchiveNotFound, FinprintError, ModelMismatch, NoPhotosFound, NotAnImage
from catalog.fusion import Fusion
from catalog.identify import Identifier, Prefetched, Verification, decision_rule, partition_key
from catalog.modelcard import ModelCard
from catalog.photos import (
    IMAGE_SUFFIXES,
    FoundFile,
    PathFields,
    PathPattern,
    parse_path_fields,
    pattern_fits,
    printable_path,
    walk,
)
from catalog.settings import Settings, to_remember, with_catalogue_settings
from catalog.store import (
    Batch,
    DamagedCopy,
    IndividualRow,
    KnownPath,
    PathRow,
    PhotoError,
    PhotoRow,
    SightingRow,
    Store,
    individual_label,
    nightly_backup_path,
    write_nightly_backup,
)
from catalog.vocabulary import KeypointDetector, Sides

ProgressCallback = Callable[[int, int], None]
_log = logging.getLogger("finprint")
# Catalogued photos whose keypoints identification keeps in memory (about 400 MB at most).
_FEATURES_KEPT = 2_000
# Linux's PATH_MAX: a longer path cannot be opened by name, by finprint or by anything else.
PATH_MAX_BYTES = 4096


@dataclass
class RunResult:
    """What one index run did."""

    run_id: int
    model_version: str
    distance_threshold: float
    providers: list[str]
    files_seen: int = 0
    files_unchanged: int = 0
    photos_new: int = 0
    duplicate_paths: int = 0
    paths_missing: int = 0
    individuals_new: int = 0
    # Photos filed as re-sightings and for review, and the earlier individuals re-sighted.
    matched: int = 0
    review: int = 0
    individuals_resighted: int = 0
    errors: list[PhotoError] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    links_made: int = 0
    # The night's grouping (catalog.encounters): photos it moved or took out of review, and the
    # individuals first seen tonight it left with no photo (merged into another).
    photos_regrouped: int = 0
    individuals_folded: int = 0
    # Catalogued photos found under a new path only (a renamed folder, a moved file).
    photos_moved: int = 0
    # Catalogued photos whose file was rewritten with the same picture (EXIF written, re-export).
    photos_edited: int = 0


def graph_directory(db_path: Path) -> Path:
    """Where the HNSW graphs of a catalogue are kept: beside it, named after it."""
    return db_path.with_name(db_path.name + ".hnsw")


def _unchanged(known: KnownPath | None, found: FoundFile) -> bool:
    return known is not None and (known.size_bytes, known.mtime_ns) == (found.size_bytes, found.mtime_ns)


def find_files(
    roots: Iterable[Path], unreadable_folders: list[str] | None = None, left_out: list[str] | None = None
) -> list[tuple[Path, FoundFile]]:
    """Every image file under the roots, with the root it was found under; folders that could not
    be listed are appended to `unreadable_folders` (their paths), folder links that lead out of
    the archive (not followed) to `left_out`."""
    found: list[tuple[Path, FoundFile]] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            raise ArchiveNotFound(root)
        if root.is_file() and root.suffix.lower() not in IMAGE_SUFFIXES:
            raise NotAnImage(root, f"'{root.suffix}' is not a photo file type")
        problems: list[str] = []
        files = [(root, f) for f in walk(root, problems, left_out)]
        if unreadable_folders is not None:
            unreadable_folders.extend(problems)
        if not files and not problems:
            raise NoPhotosFound(root)
        # Overlapping roots (`index A A/sub`) find a file twice: it is one photo at one path.
        found.extend((where, f) for where, f in files if f.path not in seen)
        seen.update(f.path for _, f in files)
    return found


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


def _listing_failure(folder: str) -> str:
    """Why a folder could not be listed, where finprint can tell."""
    length_bytes = len(os.fsencode(folder))
    if length_bytes >= PATH_MAX_BYTES:
        return (
            f"folder could not be listed: its path is {length_bytes:,} bytes, over the system's limit "
            f"of {PATH_MAX_BYTES:,}; shorten the folder names above it"
        )
    return "folder could not be listed"


def _absolutised(
    store: Store, known: dict[str, KnownPath], found: list[tuple[Path, FoundFile]]
) -> dict[str, KnownPath]:
    """Catalogues made before paths were stored absolute keep them as typed: a relative path whose
    absolute form this run found from here is the same file, and is rewritten in place."""
    present = {str(f.path) for _, f in found}
    renamed: dict[str, str] = {}
    for path in known:
        if not os.path.isabs(path):
            absolute = os.path.abspath(path)
            if absolute in present and absolute not in known:
                renamed[path] = absolute
    if not renamed:
        return known
    store.absolutise_paths(renamed)
    return store.known_paths()


def _pattern_coverage(pattern: PathPattern, todo: list[tuple[Path, FoundFile]]) -> list[str]:
    """A path pattern that fits none of tonight's photos is a mistake in the settings: refused
    before anything is written. One that fits only some is said in the run report."""
    unfit = [f.path for root, f in todo if not pattern_fits(f.path, root, pattern)]
    if not unfit:
        return []
    summary = f"path_pattern {pattern.pattern!r} matched {len(todo) - len(unfit)} of {len(todo)} photos"
    if len(unfit) == len(todo):
        raise FinprintError(
            f"{summary} (e.g. {printable_path(unfit[0])}): their site, date and encounter would be "
            "guessed. Fix path_pattern (finprint.toml or FINPRINT_PATH_PATTERN) to match the layout."
        )
    return [f"{summary}; the others (e.g. {printable_path(unfit[0])}) got their fields by folder convention"]


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


class _RunIdentification:
    """What one index run decides with (its identification state, not the catalogue itself): the
    HNSW graphs, the keypoints kept in memory, the photos already known, tonight's encounters and
    the next individual number."""

    def __init__(
        self,
        store: Store,
        card: ModelCard,
        settings: Settings,
        threshold: float,
        path_pattern: PathPattern | None,
        *,
        verifying: Verifying | None = None,
    ) -> None:
        self.sides_split = card.sides == Sides.SPLIT
        self.store = store
        # Keypoints of recently described or read photos, most recently used last. Bounded: a
        # photo's keypoints with their RootSIFT take about 200 KB, so a season's backlog kept
        # whole would take gigabytes; evicted ones are read again from the catalogue, where
        # every finished batch has written them.
        self.features: OrderedDict[str, verify.LocalFeatures] = OrderedDict()
        # This batch's keypoints, not in the catalogue until the batch is written: never evicted.
        self.unwritten: dict[str, verify.LocalFeatures] = {}
        self.detector = verifying.detector if verifying is not None else verify.SIFT
        verification = (
            Verification(verifying.fusion, self._features_of, verifying.detector) if verifying else None
        )
        self.identifier = Identifier(
            card.embedding.dim, threshold, settings.review_band_fraction, settings.neighbours_k, verification
        )
        # DuckDB is the source of truth for who each photo is; the saved graphs only spare
        # re-reading every vector each night, and are extended or rebuilt when they lag behind.
        owners: dict[str, dict[str, str]] = {}
        for photo in store.catalogued_photos(card.model_version):
            key = partition_key(photo.side, photo.crop, self.sides_split)
            owners.setdefault(key, {})[photo.photo_id] = photo.individual_id
        self.graph_dir = graph_directory(settings.db_path)
        self.graph_notes: list[str] = []
        missing = self.identifier.load(self.graph_dir, card.model_version, owners, self.graph_notes)
        for key, photo_ids in missing.items():
            if photo_ids:
                vectors = store.vectors_for(photo_ids, card.model_version)
                self.identifier.add(key, photo_ids, [owners[key][p] for p in photo_ids], vectors)
        # A killed night resumed must decide exactly as if it had not been killed.
        for individual_id in store.individuals_since_last_finished_run():
            self.identifier.mark_new(individual_id)
        self.known_ids = store.known_photo_ids()
        self.next_number = store.next_individual_number()
        self.path_pattern = path_pattern
        self.card = card
        self.threshold = threshold
        # This batch's photos edited in place: new photo id -> (its old version, that one's individual).
        self.editions: dict[str, tuple[str, str]] = {}
        # encounter -> the catalogue entries its photos went to, by (side, crop); a night resumed
        # after a kill starts from the photos it had catalogued, so that it links as one run would.
        self.encounters: dict[str, dict[tuple[str | None, str | None], set[str]]] = {}
        for encounter, side, crop, individual_id in store.encounters_since_last_finished_run():
            self.encounters.setdefault(encounter, {}).setdefault((side, crop), set()).add(individual_id)

    def _remember(self, photo_id: str, features: verify.LocalFeatures) -> None:
        self.features[photo_id] = features
        self.features.move_to_end(photo_id)
        while len(self.features) > _FEATURES_KEPT:
            self.features.popitem(last=False)

    def _features_of(self, photo_ids: list[str]) -> dict[str, verify.LocalFeatures]:
        found = {photo_id: self.unwritten[photo_id] for photo_id in photo_ids if photo_id in self.unwritten}
        for photo_id in photo_ids:
            if photo_id in self.features:
                self.features.move_to_end(photo_id)
                found[photo_id] = self.features[photo_id]
        wanted = [photo_id for photo_id in photo_ids if photo_id not in found]
        if wanted:
            for photo_id, blob in self.store.local_features(wanted, self.detector.name).items():
                found[photo_id] = self.detector.features_from_bytes(blob)
                self._remember(photo_id, found[photo_id])
        return found

    def identify_batch(
        self, items: list[DecodedPhoto], vectors: np.ndarray, batch: Batch, result: RunResult
    ) -> None:
        """Decide who each photo of a batch shows, in order, and add their rows to the batch.

        The graph is queried a partition at a time for the whole batch first (see
        `Identifier.prefetch`); decisions are then taken photo by photo as before."""
        # The previous batch is written by now: its keypoints are in the catalogue.
        for photo_id, features in self.unwritten.items():
            self._remember(photo_id, features)
        self.unwritten = {}
        fields = [parse_path_fields(item.found.path, item.root, self.path_pattern) for item in items]
        keys = [partition_key(f.side, f.crop, self.sides_split) for f in fields]
        nearest: list[Prefetched | None] = [None] * len(items)
        for key in set(keys):
            rows = [i for i, k in enumerate(keys) if k == key]
            for row, near in zip(rows, self.identifier.prefetch(key, vectors[rows]), strict=True):
                nearest[row] = near
        for item, vector, photo_fields, key, near in zip(items, vectors, fields, keys, nearest, strict=True):
            self._identify_one(item, vector, photo_fields, key, near, batch=batch, result=result)

    def _identify_one(
        self,
        item: DecodedPhoto,
        vector: np.ndarray,
        fields: PathFields,
        key: str,
        prefetched: Prefetched | None,
        *,
        batch: Batch,
        result: RunResult,
    ) -> None:
        if item.features is not None:
            self.unwritten[item.photo_id] = item.features
            batch.features.append((item.photo_id, item.features.to_bytes()))
            batch.detector = self.detector.name
        if item.photo_id in self.editions:
            self._keep_edition(item, vector, fields, key, batch=batch, result=result)
            return
        decision = self.identifier.assign(key, vector, item.features, prefetched)
        individual_id = decision.individual_id
        if individual_id is None:
            individual_id = individual_label(self.next_number)
            batch.individuals.append(
                IndividualRow(individual_id, self.next_number, fields.side, fields.crop, item.photo_id)
            )
            self.next_number += 1
            result.individuals_new += 1
            self.identifier.mark_new(individual_id)
        else:
            result.matched += 1
        result.review += decision.status == "review"
        self.identifier.add(key, [item.photo_id], [individual_id], vector[None, :])
        if fields.encounter is not None:
            views = self.encounters.setdefault(fields.encounter, {})
            views.setdefault((fields.side, fields.crop), set()).add(individual_id)
        batch.photos.append(_photo_row(item, fields))
        batch.vectors.append(vector)
        batch.sightings.append(
            SightingRow(
                item.photo_id, individual_id, decision.status, decision.distance, decision.matched_photo_id,
                decision.second_individual_id, decision.second_distance,
                decision.probability if decision.probability is not None
                else self.card.match_probability(decision.decision_distance),
                decision.inliers, decision.decision_distance, decision.keypoint_lines, decision.caution,
            )
        )  # fmt: skip

    def _keep_edition(
        self,
        item: DecodedPhoto,
        vector: np.ndarray,
        fields: PathFields,
        key: str,
        *,
        batch: Batch,
        result: RunResult,
    ) -> None:
        """The same picture with new bytes: it keeps its old version's sighting, decisions and
        individual, and joins the graph under its new id."""
        old_photo, individual_id = self.editions[item.photo_id]
        self.identifier.add(key, [item.photo_id], [individual_id], vector[None, :])
        batch.photos.append(_photo_row(item, fields))
        batch.vectors.append(vector)
        batch.superseded.append((old_photo, item.photo_id))
        result.photos_edited += 1


def _photo_row(item: DecodedPhoto, fields: PathFields) -> PhotoRow:
    exif = item.exif
    found = item.found
    return PhotoRow(
        item.photo_id, str(found.path), found.size_bytes, found.mtime_ns, item.width, item.height,
        exif.taken_at, exif.latitude, exif.longitude, fields.survey_date, fields.site, fields.camera,
        fields.side, fields.crop, exif.utc_offset, fields.encounter,
    )  # fmt: skip


def index(settings: Settings, roots: list[Path], on_progress: ProgressCallback | None = None) -> RunResult:
    """Catalogue every new photo under `roots` into the catalogue at settings.db_path."""
    started = time.perf_counter()
    # Paths are catalogued absolute, so that a run from cron, from another folder or by another
    # person finds the same paths (a relative root once doubled every path and export row).
    # abspath, not resolve: a symlinked archive keeps the path people know it by.
    roots = [Path(os.path.abspath(root)) for root in roots]
    _refuse_non_text_roots(roots)
    unreadable_folders: list[str] = []
    left_out: list[str] = []
    found = find_files(roots, unreadable_folders, left_out)
    embedder = Embedder(settings.model_path)
    card = embedder.card
    # Checked before anything is written (a bad pattern or threshold never leaves a half-started
    # run or a new empty catalogue), and again once the catalogue's own settings are filled in.
    _run_rules(settings, card)
    with Store.open(settings.db_path) as store:
        roots, root_notes = _as_catalogued(roots, store.archive_roots())
        if root_notes:  # walked again under the paths the catalogue knows
            unreadable_folders, left_out = [], []
            found = find_files(roots, unreadable_folders, left_out)
        # What the catalogue was indexed with, wherever tonight's run gave nothing else.
        settings, setting_notes = with_catalogue_settings(settings, store.stored_settings())
        path_pattern, threshold = _run_rules(settings, card)
        card_notes = _check_model(store, card)
        known_paths = _absolutised(store, store.known_paths(), found)
        todo = [(root, f) for root, f in found if not _unchanged(known_paths.get(str(f.path)), f)]
        pattern_notes = _pattern_coverage(path_pattern, todo) if path_pattern is not None else []
        verifying, why_not = verification_for(settings, card)
        if verifying is not None and todo:
            _refuse_mixed_keypoints(store, verifying.detector, settings.db_path)
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
            root_notes + card_notes + _links_left_out(left_out) + setting_notes + pattern_notes
        )
        _record_unlistable(store, card.model_version, unreadable_folders, result)
        result.warnings.extend(_model_warnings(card, why_not))
        result.files_unchanged = len(found) - len(todo)
        seconds = _stage_seconds()
        # A rerun with nothing new and no interrupted night to finish (cron on a quiet night)
        # needs neither the graphs nor the identification state: building them was a third of
        # such a run over 10,000 photos.
        if todo or store.night_in_progress():
            tonight = _RunIdentification(store, card, settings, threshold, path_pattern, verifying=verifying)
            result.warnings.extend(tonight.graph_notes)
            if verifying is not None:
                result.warnings.extend(store.keypoint_notes())
            night = _Night(store, embedder, tonight, known_paths, result, seconds)
            night.run(todo, card, settings, verifying.detector if verifying else None, on_progress)
            relocated = night.relocated
        else:
            relocated = {}
        _after_the_walk(
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


def _stage_seconds() -> dict[str, float]:
    return {"decode": 0.0, "describe": 0.0, "embed": 0.0, "identify": 0.0, "write": 0.0}


@dataclass
class _Pending:
    """A batch between decoding and writing: its rows so far, its new photos, their vectors."""

    batch: Batch
    fresh: list[DecodedPhoto]
    files: int
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))


@dataclass
class _Night:
    """An index run from its first batch to its last: each batch decoded, embedded, identified
    and written in one transaction, with the time each stage took."""

    store: Store
    embedder: Embedder
    tonight: _RunIdentification
    known_paths: dict[str, KnownPath]
    result: RunResult
    seconds: dict[str, float] = field(default_factory=_stage_seconds)
    # path -> the photo catalogued there, for this batch's files that changed since.
    old_versions: dict[str, str] = field(default_factory=dict)
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
        self.old_versions = _old_versions(self.store, batch.stale_paths)
        arrived = {str(d.found.path): d.photo_id for d in decoded}
        batch.displaced = [(old, arrived[path]) for path, old in self.old_versions.items()]
        fresh = _new_content(decoded, self.tonight.known_ids, batch, self.result)
        # Known photos at a new path: what that path says (site, date, camera...), should the old
        # path turn out gone once the walk is done (a corrected folder name, a moved file).
        pattern = self.tonight.path_pattern
        new_ids = {f.photo_id for f in fresh}
        for item in decoded:
            if item.photo_id not in new_ids:
                fields = parse_path_fields(item.found.path, item.root, pattern)
                self.relocated.setdefault(item.photo_id, []).append((str(item.found.path), fields))
        return _Pending(batch, fresh, len(decoded) + len(failures))

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
        pending.fresh, pending.vectors = _drop_non_finite(
            pending.fresh, vectors.result(), self.tonight.known_ids, pending.batch, self.result
        )
        return pending

    def catalogue(self, pending: _Pending) -> int:
        """One embedded batch identified and written whole or not at all; returns its file count."""
        result = self.result
        tick = time.perf_counter()
        self.tonight.editions = _editions(self.store, self.tonight, self.old_versions, pending)
        # The others were overwritten by another picture: their sighting stays, as it happened.
        batch = pending.batch
        batch.displaced = [(old, new) for old, new in batch.displaced if new not in self.tonight.editions]
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
                store, card, settings, tonight, result
            )
            self.seconds["group"] = time.perf_counter() - tick
            result.individuals_new = max(0, result.individuals_new - result.individuals_folded)
        result.links_made = _link_encounters(store, tonight.encounters)


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


def _new_content(
    decoded: list[DecodedPhoto], known_ids: set[str], batch: Batch, result: RunResult
) -> list[DecodedPhoto]:
    """The photos whose content is new; the same content at another path (a copy, or a moved
    file) is one photo with two paths, recorded in `batch` as a path only."""
    fresh: list[DecodedPhoto] = []
    for item in decoded:
        if item.photo_id in known_ids:
            found_file = item.found
            batch.known_content_paths.append(
                PathRow(str(found_file.path), item.photo_id, found_file.size_bytes, found_file.mtime_ns)
            )
            result.duplicate_paths += 1
        else:
            known_ids.add(item.photo_id)
            fresh.append(item)
    return fresh


# A file changed in place whose new embedding lies this close to its old version's (as a
# fraction of the model's threshold) is the same picture with new bytes: EXIF or GPS written
# into it, a re-export. Re-encoding drawn photos at JPEG quality 70-95 or at half size moved the
# default model's embedding 0.06 (median) to 0.17 (max), half its threshold of 0.389; a photo
# of another fish that close would be matched on the embedding alone. Farther: a new photo,
# identified as any other.
SAME_PICTURE_FRACTION = 0.5


def _old_versions(store: Store, stale_paths: list[str]) -> dict[str, str]:
    """path -> the photo catalogued there, for changed files whose photo has no other path
    still there (edited in place; a copy elsewhere keeps the old version its own)."""
    if not stale_paths:
        return {}
    at = store.photo_ids_at(stale_paths)
    present = store.present_paths(sorted(set(at.values())))
    return {path: photo_id for path, photo_id in at.items() if present.get(photo_id) == [path]}


def _editions(
    store: Store, tonight: _RunIdentification, old_versions: dict[str, str], pending: _Pending
) -> dict[str, tuple[str, str]]:
    """The batch's photos that are their path's old photo edited in place: new id -> (old id,
    its individual)."""
    if not old_versions:
        return {}
    editions = {}
    limit = SAME_PICTURE_FRACTION * tonight.threshold
    for item, vector in zip(pending.fresh, pending.vectors, strict=True):
        old = old_versions.get(str(item.found.path))
        state = store.sighting_states([old]).get(old) if old else None
        if old is None or state is None:
            continue
        try:
            before = store.vectors_for([old], tonight.card.model_version)[0]
        except KeyError:  # embedded by another model only: identify it as a new photo
            continue
        if float(np.linalg.norm(vector - before)) < limit:
            editions[item.photo_id] = (old, state[0])
    return editions


def _links_left_out(left_out: list[str]) -> list[str]:
    if not left_out:
        return []
    return [
        f"{len(left_out)} folder link(s) lead out of the archive and were not followed (e.g. "
        f"{left_out[0]}): their photos are not this archive's. Index that folder itself if they are."
    ]


def _record_unlistable(store: Store, model_version: str, folders: list[str], result: RunResult) -> None:
    """A folder that cannot be listed is an error of the night (exit code 2), and its catalogued
    photos are not marked missing: they are unreadable, not gone."""
    folder_errors = [PhotoError(folder, _listing_failure(folder)) for folder in folders]
    if folder_errors:
        result.errors.extend(folder_errors)
        store.write_batch(result.run_id, model_version, Batch(errors=folder_errors))


def _as_catalogued(roots: list[Path], walked: list[str]) -> tuple[list[Path], list[str]]:
    """Each root as the catalogue already knows its folder: one reached through a symlink (or
    by another spelling) that an earlier run walked by its own path is walked by that path, so
    that every photo keeps one path and exports list it once. Returns the roots and what was
    said about them."""
    known = []
    for text in walked:
        with contextlib.suppress(OSError):
            known.append((Path(text), Path(text).resolve(strict=True)))
    mapped, notes = [], []
    for root in roots:
        try:
            real = root.resolve(strict=True)
        except OSError:
            mapped.append(root)
            continue
        same = next(
            (
                path / real.relative_to(resolved)
                for path, resolved in known
                if real.is_relative_to(resolved) and not root.is_relative_to(path)
            ),
            None,
        )
        if same is None or same == root:
            mapped.append(root)
            continue
        mapped.append(same)
        notes.append(
            f"{root} is {same} (a symlink or another spelling of a folder this catalogue walked): "
            f"walked as {same}, so that its photos keep the paths they were catalogued under"
        )
    return mapped, notes


def _refuse_non_text_roots(roots: list[Path]) -> None:
    for root in roots:
        if printable_path(root) != str(root):
            raise FinprintError(
                f"{printable_path(root)}: the folder's name is not UTF-8 text, and the catalogue keeps "
                "every path as text. Rename it (for a Latin-1 name: convmv -f latin1 -t utf8 -r --notest "
                "FOLDER) and run again."
            )


def _after_the_walk(
    store: Store,
    roots: list[Path],
    *,
    found: list[tuple[Path, FoundFile]],
    known_paths: dict[str, KnownPath],
    unreadable_folders: list[str],
    relocated: dict[str, list[tuple[str, PathFields]]],
    result: RunResult,
) -> None:
    """Catalogued paths the walk did not find are marked missing; photos found only under a new
    path take that path's survey fields."""
    prefixes = [str(root) if root.is_file() else os.path.join(str(root), "") for root in roots]
    result.paths_missing = store.mark_missing(
        prefixes,
        {str(f.path) for _, f in found},
        known_paths,
        tuple(os.path.join(folder, "") for folder in unreadable_folders),
    )
    if result.photos_edited:
        result.warnings.append(
            f"{result.photos_edited} catalogued photo(s) were rewritten in place with the same picture "
            "(EXIF or GPS written, a re-export): each keeps its sighting and decisions, under its new "
            "content's id"
        )
    result.photos_moved = _follow_moves(store, relocated)
    if result.photos_moved:
        result.warnings.append(
            f"{result.photos_moved} catalogued photo(s) were found under a new path and no longer "
            "under their old one (a renamed folder, a moved file): their site, date and camera now "
            "come from the new path, and exports list each once, there"
        )


def _follow_moves(store: Store, relocated: dict[str, list[tuple[str, PathFields]]]) -> int:
    """Photos found tonight under new paths only (every path they had before is gone) take their
    survey date, site and camera from a new path: the latest path wins (a typo in a folder name
    corrected, a photo moved to its right site). Copies, whose old path is still there, keep
    theirs. Of several new paths, the one whose fields differ least from the photo's wins (the
    renamed folder over a copy elsewhere). Returns how many photos moved."""
    if not relocated:
        return 0
    present = store.present_paths(sorted(relocated))
    current = store.survey_fields(sorted(relocated))
    moved: dict[str, dict[str, Any]] = {}
    for photo_id, arrivals in relocated.items():
        if sorted(present.get(photo_id, [])) != sorted(path for path, _ in arrivals):
            continue
        # Not the flank or crop: the photo's individual is of one flank and crop.
        candidates = [
            {"survey_date": fields.survey_date, "site": fields.site, "camera": fields.camera}
            for _, fields in sorted(arrivals, key=lambda arrival: arrival[0])
        ]
        before = current.get(photo_id, {})
        moved[photo_id] = min(candidates, key=lambda c: sum(c[k] != before.get(k) for k in c))
    store.set_survey_fields(moved)
    return len(moved)


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
    store: Store, card: ModelCard, settings: Settings, tonight: _RunIdentification, result: RunResult
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
        partition_of=lambda p: partition_key(p.side, p.crop, tonight.sides_split),
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
        # Every photo a group decides becomes a re-sighting; an individual it empties started with
        # one of them, which is now a re-sighting too (see the caller's individuals_new).
        result.review -= decision.reviews_settled
        result.matched += len(emptied)
    return sum(len(decision.photo_ids) for decision in decisions), emptied_in_all


def _link_encounters(
    store: Store, encounters: dict[str, dict[tuple[str | None, str | None], set[str]]]
) -> int:
    """Link the catalogue entries of each encounter (one fish: its flanks and crops), recorded as
    undoable decisions. An encounter whose photos of one view went to two entries holds two
    fish or a wrong match, so nothing in it is linked."""
    from catalog.decisions import FINPRINT, link

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


@dataclass
class ReindexResult:
    """What a reindex did."""

    model_version: str
    photos_embedded: int = 0
    # Photos whose keypoints the run's detector made (those that had none of its keypoints).
    photos_described: int = 0
    detector: str = ""
    embeddings_dropped: int = 0
    errors: list[PhotoError] = field(default_factory=list)
    # With skip_unreadable: catalogued photos left without an embedding of the new model.
    photos_left_out: int = 0


def reindex(
    settings: Settings, on_progress: ProgressCallback | None = None, skip_unreadable: bool = False
) -> ReindexResult:
    """Re-embed every catalogued photo with settings.model_path, and describe with the settings'
    detector every photo that lacks its keypoints (so a catalogue can change detector).
    Individuals and decisions stay; a killed reindex resumes where it stopped, and indexing waits
    until it has finished.

    With `skip_unreadable`, photos whose file is gone or changed keep their sightings but are left
    out of identification under the new model (a later reindex tries them again)."""
    embedder = Embedder(settings.model_path)
    card = embedder.card
    result = ReindexResult(card.model_version)
    with Store.open(settings.db_path) as store:
        settings, _ = with_catalogue_settings(settings, store.stored_settings())
        catalogued = store.catalogued_paths(card.model_version)
        unreachable = [photo_id for photo_id, path, embedded in catalogued if not embedded and path is None]
        if unreachable and not skip_unreadable:
            raise FinprintError(
                f"{settings.db_path}: {len(unreachable)} catalogued photo(s) have no file left to re-embed "
                f"(e.g. photo {unreachable[0][:12]}). Restore the files and run reindex again, or add "
                "--skip-unreadable to leave them out of identification (their sightings stay)."
            )
        result.photos_left_out = len(unreachable)
        # Keypoints do not depend on the model: a reindex describes the photos that lack them.
        detector = detectors.named(settings.detector) if settings.verify and verify.available() else None
        result.detector = detector.name if detector else ""
        present = [(photo_id, path, embedded) for photo_id, path, embedded in catalogued if path is not None]
        ids = [photo_id for photo_id, _, _ in present]
        already_described = store.described_photos(ids, detector.name) if detector else set()
        embedding = {photo_id for photo_id, _, embedded in present if not embedded}
        todo = [
            (photo_id, path)
            for photo_id, path, embedded in present
            if not embedded or (detector is not None and photo_id not in already_described)
        ]
        files = [(Path(path), FoundFile(Path(path), 0, 0)) for _, path in todo]
        expected = {path: photo_id for photo_id, path in todo}
        seconds: dict[str, float] = {"decode": 0.0, "describe": 0.0}
        done = 0
        batches = decoded_batches(
            files,
            card,
            settings.workers,
            settings.batch_size,
            seconds,
            describe=detector,
            described=already_described,
        )
        for decoded, failures in batches:
            result.errors.extend(failures)
            changed = [d for d in decoded if expected[str(d.found.path)] != d.photo_id]
            result.errors.extend(
                PhotoError(str(d.found.path), "file changed since it was catalogued") for d in changed
            )
            good = [d for d in decoded if d not in changed]
            unembedded = [d for d in good if d.photo_id in embedding]
            described = [(d.photo_id, d.features.to_bytes()) for d in good if d.features is not None]
            if unembedded or described:
                vectors = list(embedder.embed(np.stack([d.tensor for d in unembedded]))) if unembedded else []
                store.write_embeddings(
                    card.model_version,
                    [d.photo_id for d in unembedded],
                    vectors,
                    described,
                    detector.name if detector else "",
                )
            result.photos_embedded += len(unembedded)
            result.photos_described += len(described)
            done += len(decoded) + len(failures)
            if on_progress:
                on_progress(done, len(files))
        if result.errors and not skip_unreadable:
            raise FinprintError(
                f"{settings.db_path}: {len(result.errors)} photo(s) could not be re-embedded "
                f"(first: {result.errors[0].path}: {result.errors[0].reason}). "
                "Fix them and run reindex again (the photos already re-embedded are kept), or add "
                "--skip-unreadable to leave them out of identification."
            )
        result.photos_left_out += len(result.errors)
        result.embeddings_dropped = store.drop_other_embeddings(card.model_version)
    return result


def _drop_non_finite(
    fresh: list[DecodedPhoto], vectors: np.ndarray, known_ids: set[str], batch: Batch, result: RunResult
) -> tuple[list[DecodedPhoto], np.ndarray]:
    """Photos whose embedding has a NaN or an infinity become error rows: such a vector is near
    nothing or everything, and would otherwise be catalogued as a fish."""
    finite = np.isfinite(vectors).all(axis=1)
    if finite.all():
        return fresh, vectors
    for item, ok in zip(fresh, finite, strict=True):
        if not ok:
            known_ids.discard(item.photo_id)
            failure = PhotoError(
                printable_path(item.found.path),
                "the model gave a non-finite embedding (NaN or infinity); check the model's card "
                "(mean and std) or use another model",
            )
            result.errors.append(failure)
            batch.errors.append(failure)
    return [item for item, ok in zip(fresh, finite, strict=True) if ok], vectors[finite]


@dataclass(frozen=True)
class Verifying:
    """How a run verifies shortlists: the fitted fusion and the detector whose keypoints it weighs."""

    fusion: Fusion
    detector: verify.Detector


def verification_for(settings: Settings, card: ModelCard) -> tuple[Verifying | None, str | None]:
    """How to verify, or None and why identification uses embeddings alone."""
    if not settings.verify:
        return None, None
    if not verify.available():
        return None, (
            "keypoint verification is off: OpenCV is not installed, so matches rest on the embedding "
            "alone. Install it with: pip install 'finprint[verify]'"
        )
    detector = detectors.named(settings.detector)
    fusion = fusion_module.load_for_model(
        settings.model_path, card.model_version, detector.name, detector.kind
    )
    if fusion is None:
        sidecar = fusion_module.sidecar_path(settings.model_path, detector.kind)
        option = "" if detector.kind == KeypointDetector.SIFT else f" --detector {detector.kind}"
        return None, (
            f"keypoint verification is off: no {sidecar.name} fitted for model {card.model_version} "
            f"and {detector.name} keypoints. Fit one with `finprint fit-verification{option}`."
        )
    return Verifying(fusion, detector), None


def _refuse_mixed_keypoints(store: Store, detector: verify.Detector, db_path: Path) -> None:
    """Keypoints of two detectors are never matched against each other: when another detector
    described more of the catalogue than this one, those photos would count as unverifiable (a
    catalogue that stops recognising its fish), so the run stops before writing anything."""
    counts = store.keypoint_counts()
    others = {name: count for name, count in counts.items() if name != detector.name}
    if not others:
        return
    name, count = max(others.items(), key=lambda item: item[1])
    if count > counts.get(detector.name, 0):
        raise FinprintError(
            f"{db_path}: {count} catalogued photos have {name} keypoints but only "
            f"{counts.get(detector.name, 0)} have {detector.name} ones, which this run would verify "
            f"with. Describe them first with `finprint reindex --detector {detector.kind}` (keeps "
            "every sighting and decision), or index with the detector the catalogue was built with."
        )
