"""The nightly index: walk -> decode -> embed -> identify -> write, one transaction per batch."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from catalog import __version__
from catalog.embed import Embedder
from catalog.errors import ArchiveNotFound, ModelMismatch, NoPhotosFound, NotAnImage
from catalog.identify import Identifier, partition_key
from catalog.modelcard import ModelCard
from catalog.photos import IMAGE_SUFFIXES, FoundFile, parse_path_fields, read_exif, walk
from catalog.preprocess import prepare, to_tensor
from catalog.settings import Settings
from catalog.store import Batch, IndividualRow, PhotoRow, SightingRow, Store, individual_label


@dataclass(frozen=True)
class PhotoError:
    """A file the run could not catalogue, and why."""

    path: str
    reason: str


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
    individuals_new: int = 0
    matched: int = 0
    review: int = 0
    errors: list[PhotoError] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Decoded:
    found: FoundFile
    root: Path
    photo_id: str
    tensor: np.ndarray
    width: int
    height: int
    exif: tuple[datetime | None, float | None, float | None]


ProgressCallback = Callable[[int, int], None]


def find_files(roots: Iterable[Path]) -> list[tuple[Path, FoundFile]]:
    """Every image file under the roots, with the root it was found under."""
    found: list[tuple[Path, FoundFile]] = []
    for root in roots:
        if not root.exists():
            raise ArchiveNotFound(root)
        if root.is_file() and root.suffix.lower() not in IMAGE_SUFFIXES:
            raise NotAnImage(root, f"'{root.suffix}' is not a photo file type")
        files = [(root, f) for f in walk(root)]
        if not files:
            raise NoPhotosFound(root)
        found.extend(files)
    return found


def index(
    settings: Settings,
    roots: list[Path],
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Catalogue every new photo under `roots` into the catalogue at settings.db_path."""
    started = time.perf_counter()
    found = find_files(roots)
    embedder = Embedder(settings.model_path)
    card = embedder.card
    threshold = settings.distance_threshold or card.threshold
    with Store.open(settings.db_path) as store:
        existing = store.catalogue_model_version()
        if existing is not None and existing != card.model_version:
            raise ModelMismatch(settings.db_path, existing, card.model_version)
        run_id = store.start_run(card.model_version, threshold, __version__, [str(r) for r in roots])
        result = RunResult(run_id, card.model_version, threshold, embedder.providers, files_seen=len(found))
        known_paths = store.known_paths()
        todo = [(root, f) for root, f in found if known_paths.get(str(f.path)) != (f.size_bytes, f.mtime_ns)]
        result.files_unchanged = len(found) - len(todo)
        sides_split = card.sides == "split"
        identifier = Identifier(
            card.embedding.dim, threshold, settings.review_band_fraction, settings.neighbours_k
        )
        catalogued, vectors = store.catalogued_photos(card.model_version)
        for key in {partition_key(p.side, p.crop, sides_split) for p in catalogued}:
            rows = [i for i, p in enumerate(catalogued) if partition_key(p.side, p.crop, sides_split) == key]
            identifier.add(
                key,
                [catalogued[i].photo_id for i in rows],
                [catalogued[i].individual_id for i in rows],
                vectors[rows],
            )
        known_ids = store.known_photo_ids()
        next_number = store.next_individual_number()
        seconds = {"decode": 0.0, "embed": 0.0, "identify": 0.0, "write": 0.0}
        done = 0
        workers = settings.workers or (os.cpu_count() or 1)
        for decoded, failures in _decoded_batches(todo, card, workers, settings.batch_size, seconds):
            batch = Batch(errors=[(e.path, e.reason) for e in failures])
            # A file changed since it was catalogued: its old sighting stays, the path moves on.
            batch.stale_paths = [str(d.found.path) for d in decoded if str(d.found.path) in known_paths]
            result.errors.extend(failures)
            fresh: list[_Decoded] = []
            for item in decoded:
                if item.photo_id in known_ids:
                    batch.known_content_paths.append(
                        (
                            str(item.found.path),
                            item.photo_id,
                            item.found.size_bytes,
                            item.found.mtime_ns,
                        )
                    )
                    result.duplicate_paths += 1
                else:
                    known_ids.add(item.photo_id)
                    fresh.append(item)
            tick = time.perf_counter()
            embeddings = embedder.embed(np.stack([d.tensor for d in fresh])) if fresh else np.zeros((0, 0))
            seconds["embed"] += time.perf_counter() - tick
            tick = time.perf_counter()
            for item, vector in zip(fresh, embeddings, strict=True):
                fields = parse_path_fields(item.found.path, item.root)
                key = partition_key(fields.side, fields.crop, sides_split)
                decision = identifier.assign(key, vector)
                individual_id = decision.individual_id
                if individual_id is None:
                    individual_id = individual_label(next_number)
                    batch.individuals.append(
                        IndividualRow(individual_id, next_number, fields.side, fields.crop, item.photo_id)
                    )
                    next_number += 1
                    result.individuals_new += 1
                else:
                    result.matched += 1
                result.review += decision.status == "review"
                identifier.add(key, [item.photo_id], [individual_id], vector[None, :])
                taken_at, latitude, longitude = item.exif
                batch.photos.append(
                    PhotoRow(
                        item.photo_id,
                        str(item.found.path),
                        item.found.size_bytes,
                        item.found.mtime_ns,
                        item.width,
                        item.height,
                        taken_at,
                        latitude,
                        longitude,
                        fields.survey_date,
                        fields.site,
                        fields.camera,
                        fields.side,
                        fields.crop,
                    )
                )
                batch.vectors.append(vector)
                batch.sightings.append(
                    SightingRow(
                        item.photo_id,
                        individual_id,
                        decision.status,
                        decision.distance,
                        decision.matched_photo_id,
                        decision.second_individual_id,
                        decision.second_distance,
                    )
                )
            seconds["identify"] += time.perf_counter() - tick
            tick = time.perf_counter()
            store.write_batch(run_id, card.model_version, batch)
            seconds["write"] += time.perf_counter() - tick
            result.photos_new += len(fresh)
            done += len(decoded) + len(failures)
            if on_progress:
                on_progress(done, len(todo))
        seconds["total"] = time.perf_counter() - started
        result.seconds = seconds
        store.finish_run(
            run_id,
            {
                "files_seen": result.files_seen,
                "photos_new": result.photos_new,
                "photos_failed": len(result.errors),
                "individuals_new": result.individuals_new,
            },
            seconds,
        )
    return result


def _decoded_batches(
    todo: list[tuple[Path, FoundFile]],
    card: ModelCard,
    workers: int,
    batch_size: int,
    seconds: dict[str, float],
) -> Iterator[tuple[list[_Decoded], list[PhotoError]]]:
    """Decode in a thread pool, at most two batches ahead of the consumer (a bounded queue)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[_Decoded | PhotoError]] = deque()
        items = iter(todo)
        limit = 2 * batch_size
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                nxt = next(items, None)
                if nxt is None:
                    exhausted = True
                    break
                pending.append(pool.submit(_decode_one, nxt[0], nxt[1], card, seconds))
            if not pending:
                return
            decoded: list[_Decoded] = []
            failures: list[PhotoError] = []
            for _ in range(min(batch_size, len(pending))):
                outcome = pending.popleft().result()
                if isinstance(outcome, PhotoError):
                    failures.append(outcome)
                else:
                    decoded.append(outcome)
            yield decoded, failures


def _decode_one(
    root: Path, found: FoundFile, card: ModelCard, seconds: dict[str, float]
) -> _Decoded | PhotoError:
    """Read, hash and decode one file; any failure becomes data, never an exception."""
    tick = time.perf_counter()
    try:
        data = found.path.read_bytes()
        if not data:
            return PhotoError(str(found.path), "empty file (0 bytes)")
        photo_id = hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            exif = read_exif(image)
            tensor = to_tensor(prepare(image, card.input), card.input)
    except Image.DecompressionBombError as exc:
        return PhotoError(str(found.path), f"image too large to be a photo ({exc})")
    except (OSError, SyntaxError, ValueError) as exc:
        # PIL reports truncated and corrupt files as OSError, some broken headers as SyntaxError.
        return PhotoError(str(found.path), f"cannot decode: {exc}")
    finally:
        # Several workers add here at once; a lost update only blurs a timing figure.
        seconds["decode"] += time.perf_counter() - tick
    return _Decoded(found, root, photo_id, tensor, width, height, exif)
