"""The catalogued individuals an individual's photos look most like: re-sightings for a person to check.

Automatic decisions must be safe, so an animal the model cannot tell apart with confidence is
filed as new, night after night, even when its own earlier entry is the nearest one in the
catalogue (on fs48's held-out fish the shipped model ranks a photo of the right fish first for
75% of photos and among the first five for 96%, at distances far above the threshold). A
person can close that gap, given the short list: for each individual asked about, every other
individual of the same partition (flank and crop) ranked by the nearest pair of photos between
the two, exactly computed from the catalogue's embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog.errors import FinprintError
from catalog.identify import partition_key
from catalog.modelcard import ModelCard
from catalog.store import CataloguedPhoto, Store
from catalog.vocabulary import Sides

# Query photos compared at a time: 64 of them against 100,000 catalogued photos is 51 MB of
# float64 distances.
_QUERY_ROWS_PER_BLOCK = 64


@dataclass(frozen=True)
class Lookalike:
    """One candidate for one individual: `rank` 1 is the nearest."""

    individual_id: str
    photos: int
    rank: int
    candidate_id: str
    # Between the nearest photo of the individual and the nearest photo of the candidate.
    distance: float
    candidate_photos: int


def lookalikes(store: Store, card: ModelCard, individual_ids: list[str], top: int) -> list[Lookalike]:
    """Up to `top` look-alikes of each individual, nearest first, individuals in the order given;
    `card` is the model the catalogue was indexed with."""
    versions = store.catalogue_model_versions()
    if card.model_version not in versions:
        raise FinprintError(
            f"{store.db_path} was indexed with model {', '.join(versions) or '(none yet)'}, not "
            f"{card.model_version}. Give the catalogue's model with --model."
        )
    catalogued = store.catalogued_photos(card.model_version)
    unknown = sorted(set(individual_ids) - {photo.individual_id for photo in catalogued})
    if unknown:
        raise FinprintError(
            f"{', '.join(unknown)}: no photo of the catalogue is filed under it (merged into another "
            "entry, or not an id of this catalogue). `finprint individuals` lists them."
        )
    return _ranked(store, card, catalogued, individual_ids, top)


def first_lookalikes(store: Store, card: ModelCard, individual_ids: list[str]) -> dict[str, Lookalike]:
    """Each of these individuals that still holds a photo with its first look-alike; none when the
    catalogue was indexed with another model (its distances would say nothing)."""
    if card.model_version not in store.catalogue_model_versions():
        return {}
    catalogued = store.catalogued_photos(card.model_version)
    held = {photo.individual_id for photo in catalogued}
    asked = [i for i in individual_ids if i in held]
    return {f.individual_id: f for f in _ranked(store, card, catalogued, asked, top=1)}


def _ranked(
    store: Store, card: ModelCard, catalogued: list[CataloguedPhoto], individual_ids: list[str], top: int
) -> list[Lookalike]:
    """The look-alikes of individuals known to hold photos among `catalogued`."""
    sides_split = card.sides == Sides.SPLIT
    partitions: dict[str, list[int]] = {}
    for row, photo in enumerate(catalogued):
        partitions.setdefault(partition_key(photo.side, photo.crop, sides_split), []).append(row)
    owners = [photo.individual_id for photo in catalogued]
    asked = set(individual_ids)
    ruled_different: dict[str, set[str]] = {}
    for pair in store.ruled_different():
        first, second = sorted(pair)
        ruled_different.setdefault(first, set()).add(second)
        ruled_different.setdefault(second, set()).add(first)
    found: dict[str, list[Lookalike]] = {}
    for rows in partitions.values():
        if not asked & {owners[row] for row in rows}:
            continue
        # Gallery sorted by individual, so that one reduceat gives each individual's nearest photo.
        rows = sorted(rows, key=lambda row: owners[row])
        # float64 once per partition: the distances of near photos are differences of large sums.
        vectors = store.vectors_for([catalogued[row].photo_id for row in rows], card.model_version)
        vectors = vectors.astype(np.float64)
        gallery_owners = [owners[row] for row in rows]
        starts = [i for i, owner in enumerate(gallery_owners) if i == 0 or owner != gallery_owners[i - 1]]
        names = [gallery_owners[i] for i in starts]
        position = {name: i for i, name in enumerate(names)}
        sizes = np.diff([*starts, len(rows)])
        squared_norms = (vectors**2).sum(axis=1)
        for index, name in enumerate(names):
            if name not in asked:
                continue
            own = slice(starts[index], starts[index] + int(sizes[index]))
            nearest = nearest_by_individual(vectors[own], vectors, squared_norms, starts)
            nearest[index] = np.inf
            # A look-alike a person ruled a different fish is not offered again.
            for candidate in ruled_different.get(name, ()):
                if candidate in position:
                    nearest[position[candidate]] = np.inf
            order = [int(i) for i in np.argsort(nearest, kind="stable")[:top] if np.isfinite(nearest[i])]
            found[name] = [
                Lookalike(name, int(sizes[index]), rank, names[i], float(nearest[i]), int(sizes[i]))
                for rank, i in enumerate(order, start=1)
            ]
    return [lookalike for name in individual_ids for lookalike in found.get(name, [])]


def nearest_by_individual(
    queries: np.ndarray, gallery: np.ndarray, squared_norms: np.ndarray, starts: list[int] | np.ndarray
) -> np.ndarray:
    """For each gallery individual (a run of rows from each start), the smallest distance between
    any query and any of its photos (float64 rows; `squared_norms`: the gallery rows')."""
    best = np.full(len(gallery), np.inf)
    for first in range(0, len(queries), _QUERY_ROWS_PER_BLOCK):
        block = queries[first : first + _QUERY_ROWS_PER_BLOCK]
        squared = (block**2).sum(axis=1)[:, None] + squared_norms[None, :] - 2 * block @ gallery.T
        best = np.minimum(best, squared.min(axis=0))
    return np.sqrt(np.maximum(np.minimum.reduceat(best, starts), 0.0))


def nearest_photos(store: Store, card: ModelCard, first: str, second: str) -> tuple[str, str, float] | None:
    """The photo of `first` and the photo of `second` nearest each other, with their distance:
    the pair a person compares; None when either entry holds no photo embedded by `card`."""
    photos = [store.photos_of(first), store.photos_of(second)]
    if not photos[0] or not photos[1]:
        return None
    try:
        mine, theirs = (store.vectors_for(ids, card.model_version).astype(np.float64) for ids in photos)
    except KeyError:  # a photo embedded by another model only (a reindex in progress)
        return None
    squared = (mine**2).sum(axis=1)[:, None] + (theirs**2).sum(axis=1)[None, :] - 2 * mine @ theirs.T
    row, column = np.unravel_index(int(np.argmin(squared)), squared.shape)
    return photos[0][row], photos[1][column], float(np.sqrt(max(float(squared[row, column]), 0.0)))
