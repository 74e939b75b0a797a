"""Re-embedding a catalogue with another model, keeping every individual and decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog import detectors, verify
from catalog.decode import decoded_batches
from catalog.embed import Embedder
from catalog.errors import FinprintError
from catalog.night.outcome import ProgressCallback, ReindexResult
from catalog.photos import FoundFile
from catalog.settings import Settings, with_catalogue_settings
from catalog.store import PhotoError, Store


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
