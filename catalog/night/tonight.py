"""What a night identifies with: the graphs, the keypoints kept in memory, and each photo's decision."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog import detectors, verify
from catalog import fusion as fusion_module
from catalog.decode import DecodedPhoto
from catalog.errors import FinprintError
from catalog.fusion import Fusion
from catalog.identify import Identifier, Prefetched, Verification, partition_key
from catalog.modelcard import ModelCard
from catalog.night.outcome import RunResult, graph_directory
from catalog.photos import PathFields, PathPattern, parse_path_fields, printable_path
from catalog.settings import Settings
from catalog.store import (
    Batch,
    IndividualRow,
    PathRow,
    PhotoError,
    PhotoRow,
    SightingRow,
    Store,
    TonightPhoto,
    individual_label,
)
from catalog.vocabulary import KeypointDetector, Partition, Sides

# Catalogued photos whose keypoints identification keeps in memory (about 400 MB at most).
_FEATURES_KEPT = 2_000


class RunIdentification:
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
        owners: dict[Partition, dict[str, str]] = {}
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

    def partition_of(self, photo: TonightPhoto) -> Partition:
        """The partition a photo of tonight is compared within (for the night's groups)."""
        return partition_key(photo.side, photo.crop, self.sides_split)

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
        key: Partition,
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
            self.identifier.mark_new(individual_id)
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
        key: Partition,
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


def new_content(
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
# default model's embedding 0.05 (median) to 0.17 (max), under half its threshold of 0.389, where
# the nearest other photo lay 0.31 away at the least (`just bench same-picture`); a photo of
# another fish that close would be matched on the embedding alone. Farther: a new photo,
# identified as any other.
SAME_PICTURE_FRACTION = 0.5


def old_versions(store: Store, catalogued_at: dict[str, str]) -> dict[str, str]:
    """Of changed files (path -> the photo catalogued there), those whose photo has no other
    path still there (edited in place; a copy elsewhere keeps the old version its own)."""
    if not catalogued_at:
        return {}
    present = store.present_paths(sorted(set(catalogued_at.values())))
    return {path: photo_id for path, photo_id in catalogued_at.items() if present.get(photo_id) == [path]}


def find_editions(
    store: Store,
    tonight: RunIdentification,
    replacing: dict[str, tuple[str, str]],
    fresh: list[DecodedPhoto],
    vectors: np.ndarray,
) -> dict[str, tuple[str, str]]:
    """The batch's new photos (`fresh`, embedded as `vectors`) that are the old photo of their
    path (`replacing`: path -> (old id, new id)) edited in place: new id -> (old id, its
    individual)."""
    row_of = {item.photo_id: row for row, item in enumerate(fresh)}
    pairs = [(old, new) for old, new in replacing.values() if new in row_of]
    if not pairs:
        return {}
    olds = [old for old, _ in pairs]
    states = store.sighting_states(olds)
    try:
        before = store.vectors_for(olds, tonight.card.model_version)
    except KeyError:  # embedded by another model only: identified as new photos
        return {}
    limit = SAME_PICTURE_FRACTION * tonight.threshold
    return {
        new: (old, states[old][0])
        for (old, new), old_vector in zip(pairs, before, strict=True)
        if old in states and float(np.linalg.norm(vectors[row_of[new]] - old_vector)) < limit
    }


def drop_non_finite(
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


def refuse_mixed_keypoints(store: Store, detector: verify.Detector, db_path: Path) -> None:
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
