"""People's decisions in a catalogue as training examples: who is whom, and who is not whom."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from catalog.errors import TrainingDataError
from catalog.offline.labels import LabelledPhoto
from catalog.store import LiveDecision, SightingForTraining, Store
from catalog.vocabulary import DecisionAction, SightingStatus

# An automatic match this sure (the sighting's P(same individual): fused with keypoints when it
# was verified, else the card's calibration of its distance) counts as if a person had confirmed
# it. Below it only people's word counts: a wrong match taught to the network teaches it to
# make that mistake again.
MIN_MATCH_PROBABILITY = 0.95
# Positives need two photos of an individual; validation needs at least two held-out individuals
# and training two others.
MIN_PHOTOS_PER_INDIVIDUAL = 2
MIN_INDIVIDUALS = 4
# Decisions that say what photos show; rename and link say nothing of it.
TEACHING_ACTIONS = (DecisionAction.CONFIRM, DecisionAction.REJECT, DecisionAction.MERGE, DecisionAction.SPLIT)


@dataclass
class TrainingSet:
    """Photos labelled by catalogue individual, and pairs people said are different fish."""

    photos: list[LabelledPhoto] = field(default_factory=list)
    photo_ids: list[str] = field(default_factory=list)
    # Indices into `photos`: each pair shows two different fish, by a person's reject or split.
    negative_pairs: list[tuple[int, int]] = field(default_factory=list)
    # Decisions used, by action; undone ones are counted and never used.
    decisions: dict[str, int] = field(default_factory=dict)
    decisions_undone: int = 0
    automatic_matches: int = 0
    # Individuals with too few trusted photos to give a positive pair (and no negative either).
    individuals_skipped: int = 0
    # Photo ids whose file is not where the catalogue last saw it (or nowhere at all).
    missing: list[str] = field(default_factory=list)

    @property
    def individuals(self) -> list[str]:
        return sorted({photo.individual for photo in self.photos})

    def individuals_with_pairs(self) -> list[str]:
        """Individuals with at least two photos: the ones that give positive pairs."""
        counts = Counter(photo.individual for photo in self.photos)
        return sorted(i for i, n in counts.items() if n >= MIN_PHOTOS_PER_INDIVIDUAL)


def _trusted_photos(
    sightings: list[SightingForTraining], decisions: list[LiveDecision], min_match_probability: float
) -> tuple[set[str], int]:
    """Photos whose individual a person vouched for (or founded it, or matched it very surely),
    and how many were admitted as sure automatic matches."""
    merged = {p for d in decisions if d.action == DecisionAction.MERGE for p in d.photo_ids}
    trusted: set[str] = set()
    automatic = 0
    for sighting in sightings:
        if sighting.status == SightingStatus.REVIEW:
            continue
        if sighting.status == SightingStatus.CONFIRMED or sighting.founding or sighting.photo_id in merged:
            trusted.add(sighting.photo_id)
        elif sighting.probability is not None and sighting.probability >= min_match_probability:
            trusted.add(sighting.photo_id)
            automatic += 1
    return trusted, automatic


def _encounter(sighting: SightingForTraining) -> str:
    """The encounter path field, else the survey date, else the night that catalogued it."""
    return sighting.encounter or (
        str(sighting.survey_date) if sighting.survey_date else f"run {sighting.run_id}"
    )


def _said_different(
    store: Store, decisions: list[LiveDecision], members: dict[str, list[str]]
) -> set[tuple[str, str]]:
    """(photo, photo) pairs a reject or a split says are different fish: the moved photo against
    every trusted photo now in the individual it was moved out of."""
    pairs: set[tuple[str, str]] = set()
    for decision in decisions:
        if decision.action == DecisionAction.REJECT:
            origins = {
                p: decision.previous_sightings[p][0]
                for p in decision.photo_ids
                if p in decision.previous_sightings
            }
        elif decision.action == DecisionAction.SPLIT and decision.individual_id is not None:
            origins = {p: decision.individual_id for p in decision.photo_ids}
        else:
            continue
        for photo, origin in origins.items():
            # The individual it left may since have been merged into another: that one is it now.
            for other in members.get(store.resolve_individual(origin) or origin, []):
                pairs.add((min(photo, other), max(photo, other)))
    return pairs


def training_set(
    store: Store,
    min_match_probability: float = MIN_MATCH_PROBABILITY,
    min_individuals: int = MIN_INDIVIDUALS,
) -> TrainingSet:
    """What the catalogue's decisions teach. Positives: the trusted photos of each individual.
    Negatives: pairs a person pulled apart, unless a later decision put them together again. A
    photo whose file is gone is reported in `missing` and left out, never fatal."""
    sightings = store.sightings_for_training()
    decisions = [d for d in store.live_decisions() if d.action in TEACHING_ACTIONS]
    result = TrainingSet(
        decisions=dict(Counter(str(d.action) for d in decisions)),
        decisions_undone=store.undone_decision_count(),
    )
    trusted, result.automatic_matches = _trusted_photos(sightings, decisions, min_match_probability)
    by_photo = {s.photo_id: s for s in sightings}
    readable = set()
    for sighting in sightings:
        if sighting.photo_id not in trusted:
            continue
        if sighting.path is None or not Path(sighting.path).is_file():
            result.missing.append(sighting.photo_id)
        else:
            readable.add(sighting.photo_id)
    members: dict[str, list[str]] = {}
    for photo_id in sorted(readable):
        members.setdefault(by_photo[photo_id].individual_id, []).append(photo_id)
    negatives = {
        (a, b)
        for a, b in _said_different(store, decisions, members)
        if a in readable and b in readable and by_photo[a].individual_id != by_photo[b].individual_id
    }
    in_negatives = {p for pair in negatives for p in pair}
    kept: list[str] = []
    for _, photos in sorted(members.items()):
        if len(photos) >= MIN_PHOTOS_PER_INDIVIDUAL or in_negatives & set(photos):
            kept.extend(photos)
        else:
            result.individuals_skipped += 1
    index_of: dict[str, int] = {}
    for photo_id in kept:
        sighting = by_photo[photo_id]
        index_of[photo_id] = len(result.photos)
        result.photo_ids.append(photo_id)
        result.photos.append(
            LabelledPhoto(
                Path(str(sighting.path)),
                sighting.individual_id,
                sighting.side,
                sighting.crop,
                # Photos of one fish on one survey are near repeats: never each other's test.
                encounter=f"{sighting.individual_id}/{_encounter(sighting)}",
            )
        )
    result.negative_pairs = sorted((index_of[a], index_of[b]) for a, b in negatives)
    usable = len(result.individuals_with_pairs())
    if usable < min_individuals:
        raise TrainingDataError(
            f"{store.db_path}: only {usable} individual(s) have {MIN_PHOTOS_PER_INDIVIDUAL} or more photos "
            f"a person confirmed (or matched with P >= {min_match_probability}); training needs "
            f"{min_individuals}. Settle `finprint review` and confirm or merge more matches first."
        )
    return result
