"""A night's photos of one animal gathered into groups, and each group decided as a whole.

During the night each photo is decided alone, as it arrives: a fish photographed twelve times
gets twelve chances to be split off (a turned head, a blurred frame starts a new individual, or
sits in review between the fish it came back as and the one its first photos of tonight made).
When the night's last photo is in, its photos are gathered into groups by appearance, within one
partition (flank and crop) and one survey (date and site: one animal is not seen at two sites at
once), and a group whose members went to several individuals is moved to one, as an automatic
decision that a person can undo (`finprint decisions`):

- a group whose photos are on average as near one catalogued individual as a single match must
  be, or that holds a photo matched to it on its own and is on average within the review band of
  it, is that individual;
- otherwise a group whose photos went only to individuals first seen tonight is one new animal,
  kept under the one that holds most of its photos;
- a group near two catalogued individuals, in the review band, holding a photo left in review on
  a catalogued individual, or holding any photo a person decided on, is left as it is (a possible
  merge is a person's call).

An individual of tonight left with no photo is merged into the one its photos went to.

Likeness is the embedding distance, with the catalogue's threshold, also when each photo was
verified by keypoints: grouped on the fused score, crops of two fish cut from one video frame
(their pixels overlap, so their keypoints agree) were joined (`just bench nights`, fs48). A group
is an average-linkage cluster: two parts join only while the mean distance between their photos
stays under the threshold a single match must pass, so a chain of look-alikes (A~B, B~C, A far
from C) does not become one group.
Everything is computed again from the catalogue at the end of each night, so a night resumed
after a kill gathers and decides exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from catalog.store import Store, TonightPhoto
from catalog.vocabulary import Partition, SightingStatus

# Distances are computed this many rows at a time, so a 20,000-photo night needs no 1.6 GB matrix.
_ROWS_PER_BLOCK = 512
# Each photo offers its nearest photos of tonight as candidates to join; average linkage decides.
_CANDIDATES_PER_PHOTO = 10


# partition, vectors, photos left out -> per vector, each catalogued individual near it and the
# distance to its nearest photo (Identifier.nearest_individuals).
class NearestKnown(Protocol):
    """For each of a partition's vectors, its nearest catalogued individuals (id -> distance),
    leaving out `tonight` (the night's own entries): what the night's identification knows."""

    def __call__(
        self, partition: Partition, vectors: np.ndarray, tonight: set[str], /
    ) -> list[dict[str, float]]: ...


class PartitionOf(Protocol):
    """The partition a photo of tonight is compared within (identify.partition_key)."""

    def __call__(self, photo: TonightPhoto, /) -> Partition: ...


@dataclass(frozen=True)
class GroupDecision:
    """One group's outcome: its photos that move to `keep` (or stay there, out of review) as
    re-sightings, and why."""

    keep: str
    photo_ids: tuple[str, ...]
    reason: str


def _nearest_pairs(vectors: np.ndarray) -> list[tuple[float, int, int]]:
    """(distance, i, j) with i < j for each photo's nearest others, nearest first."""
    count = len(vectors)
    squared_norms = (vectors.astype(np.float64) ** 2).sum(axis=1)
    k = min(_CANDIDATES_PER_PHOTO, count - 1)
    pairs: set[tuple[float, int, int]] = set()
    for start in range(0, count, _ROWS_PER_BLOCK):
        block = vectors[start : start + _ROWS_PER_BLOCK].astype(np.float64)
        squared = (
            squared_norms[start : start + len(block), None] + squared_norms[None, :] - 2 * block @ vectors.T
        )
        rows = np.arange(len(block))
        squared[rows, start + rows] = np.inf
        nearest = np.argpartition(squared, k - 1, axis=1)[:, :k]
        for row, columns in zip(rows, nearest, strict=True):
            for column in columns.tolist():
                i, j = sorted((start + int(row), column))
                pairs.add((float(np.sqrt(max(squared[row, column], 0.0))), i, j))
    return sorted(pairs)


def average_linkage_groups(vectors: np.ndarray, distance_threshold: float) -> list[list[int]]:
    """Groups of rows of `vectors` (each sorted, in order of their first row), every group's parts
    joined only while the mean distance between their photos stays under `distance_threshold`.
    Candidate joins are each photo's nearest neighbours under the threshold, the nearest first;
    singletons are left out."""
    count = len(vectors)
    if count < 2:
        return []
    parent = list(range(count))
    members: dict[int, list[int]] = {i: [i] for i in range(count)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for distance, i, j in _nearest_pairs(vectors):
        a, b = root(i), root(j)
        if distance >= distance_threshold or a == b:
            continue
        left, right = vectors[members[a]].astype(np.float64), vectors[members[b]].astype(np.float64)
        # |a - b|^2 from norms and one product: a parts x parts matrix, never parts x parts x dim.
        squared = (left**2).sum(axis=1)[:, None] + (right**2).sum(axis=1)[None, :] - 2 * left @ right.T
        if float(np.sqrt(np.maximum(squared, 0.0)).mean()) >= distance_threshold:
            continue
        keep, gone = (a, b) if a < b else (b, a)
        parent[gone] = keep
        members[keep] = sorted(members[keep] + members.pop(gone))
    return sorted((group for group in members.values() if len(group) > 1), key=lambda g: g[0])


def _catalogued_target(
    photos: list[TonightPhoto],
    tonight_individuals: set[str],
    mean_distance: dict[str, float],
    ranked: list[str],
    *,
    distance_threshold: float,
    band: float,
) -> tuple[str | None, str] | None:
    """The catalogued individual a group is (None: no catalogued fish, a new animal) and why;
    None when a person must decide (see decide_group)."""
    near_enough = distance_threshold + band
    matched_known = {
        photo.individual_id
        for photo in photos
        if photo.status == SightingStatus.MATCHED and photo.individual_id not in tonight_individuals
    }
    if len(matched_known) > 1:
        return None  # two catalogued fish in one group: a possible merge for a person
    if matched_known:
        target = next(iter(matched_known))
        # The group as a whole must be near it too (at least in the review band), and near no
        # other: one photo's match is not carried over a group that, on average, looks elsewhere.
        if mean_distance.get(target, np.inf) >= near_enough or any(
            mean_distance[other] < near_enough for other in ranked if other != target
        ):
            return None
        return (
            target,
            f"{sum(1 for p in photos if p.individual_id == target)} matched to {target} on their own",
        )
    if ranked and mean_distance[ranked[0]] < near_enough:
        runner_up = mean_distance[ranked[1]] if len(ranked) > 1 else np.inf
        if mean_distance[ranked[0]] >= distance_threshold - band or runner_up < near_enough:
            return None  # in the review band, or near two catalogued fish: a person decides
        return ranked[0], f"mean distance {mean_distance[ranked[0]]:.3f} to {ranked[0]}"
    return None, "no catalogued fish near"


def decide_group(
    photos: list[TonightPhoto],
    nearest_known: list[dict[str, float]],
    tonight_individuals: set[str],
    distance_threshold: float,
    band: float,
) -> GroupDecision | None:
    """Which individual one group of tonight's photos is, and which of its photos move there.

    `nearest_known[m]`: member m's distance to the nearest photo of each catalogued individual
    near it (photos of tonight left out). The group's distance to an individual is the mean of its
    members' (infinite when a member has none of its photos near): average linkage between the
    group and that individual, decided with the same threshold, review band (`band` on either
    side) and second-candidate rule as a single photo. A member matched on its own to a
    catalogued individual takes the group there when the group's distance to it is at most in
    the review band and no other catalogued one is as near."""
    if any(photo.status == SightingStatus.CONFIRMED for photo in photos):
        return None  # a person decided on one of them: theirs is the last word
    candidates = sorted({individual for near in nearest_known for individual in near})
    mean_distance = {
        individual: float(np.mean([near.get(individual, np.inf) for near in nearest_known]))
        for individual in candidates
    }
    ranked = sorted(candidates, key=lambda individual: (mean_distance[individual], individual))
    chosen = _catalogued_target(
        photos, tonight_individuals, mean_distance, ranked, distance_threshold=distance_threshold, band=band
    )
    if chosen is None:
        return None
    target, how = chosen
    # A member left on another catalogued individual (a review proposal) keeps the group apart.
    if any(p.individual_id not in tonight_individuals and p.individual_id != target for p in photos):
        return None
    if target is None:
        # A new animal: its photos go to the individual of tonight that holds most of them.
        held = Counter(photo.individual_id for photo in photos)
        target = min(held, key=lambda individual: (-held[individual], individual))
    # Photos that move, and photos left in review on the one the group is: the group decides them.
    moving = [p for p in photos if p.individual_id != target or p.status == SightingStatus.REVIEW]
    if not moving:
        return None
    return GroupDecision(
        target,
        tuple(p.photo_id for p in moving),
        f"automatic: tonight's {len(photos)} photos of one animal, {how}",
    )


def group_tonight(
    store: Store,
    model_version: str,
    distance_threshold: float,
    band: float,
    *,
    partition_of: PartitionOf,
    nearest_known: NearestKnown,
) -> list[GroupDecision]:
    """Gather the night's photos into groups and decide each group (see the module's text)."""
    photos = store.photos_since_last_finished_run()
    if len(photos) < 2:
        return []
    tonight_individuals = set(store.individuals_since_last_finished_run())
    by_place: dict[tuple[Partition, str, str], list[TonightPhoto]] = {}
    tonight_in: dict[Partition, set[str]] = {}
    for photo in photos:
        partition = partition_of(photo)
        by_place.setdefault((partition, str(photo.survey_date), str(photo.site)), []).append(photo)
        tonight_in.setdefault(partition, set()).add(photo.photo_id)
    decisions: list[GroupDecision] = []
    for (partition, _, _), members in sorted(by_place.items()):
        if len(members) < 2:
            continue
        vectors = store.vectors_for([photo.photo_id for photo in members], model_version)
        for rows in average_linkage_groups(vectors, distance_threshold):
            near = nearest_known(partition, vectors[rows], tonight_in[partition])
            decision = decide_group(
                [members[row] for row in rows], near, tonight_individuals, distance_threshold, band
            )
            if decision is not None:
                decisions.append(decision)
    return decisions
