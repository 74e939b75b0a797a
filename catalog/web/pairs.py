"""The browser review's questions: pairs of photos a person answers "same fish" or "different", in order."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from catalog import decisions
from catalog.errors import FinprintError
from catalog.lookalikes import Lookalike, lookalikes, nearest_photos
from catalog.modelcard import ModelCard
from catalog.store import Store

# Look-alikes offered for each of the last night's new entries (as `finprint lookalikes`).
LOOKALIKES_PER_ENTRY = 3


class PairKind(StrEnum):
    # A sighting in the review band: is the photo the individual identification proposed?
    REVIEW = "review"
    # One of last night's new entries and one of its first look-alikes: are they one fish?
    LOOKALIKE = "lookalike"


class Answer(StrEnum):
    SAME = "same"
    DIFFERENT = "different"


class PairDecided(FinprintError):
    """The pair a page showed was settled since (another page, a double click, the night)."""

    def __init__(self) -> None:
        super().__init__(
            "That pair was already decided (on another page, by a second click, or by the night): "
            "nothing more was recorded. Here is the next one."
        )


@dataclass(frozen=True)
class Pair:
    """Two photos and the question they ask."""

    kind: PairKind
    # The entry asked about, and the one it may be (the proposal; None: nothing was near enough).
    individual_id: str
    other_individual_id: str | None
    photo_id: str
    other_photo_id: str | None
    question: str
    distance: float | None
    probability: float | None = None
    inliers: int | None = None
    caution: str | None = None

    @property
    def key(self) -> str:
        """What a page posts back to name the pair it answered."""
        if self.kind is PairKind.REVIEW:
            return f"review:{self.photo_id}"
        first, second = sorted((self.individual_id, self.other_individual_id or ""))
        return f"lookalike:{first}:{second}"

    @property
    def what_same_does(self) -> str:
        if self.kind is PairKind.LOOKALIKE:
            keep, fold = older_first(self.individual_id, self.other_individual_id or "")
            return f"merge {fold} into {keep}"
        if self.other_individual_id and self.other_individual_id != self.individual_id:
            return f"the photo joins {self.other_individual_id}"
        return f"confirm it as {self.individual_id}"

    @property
    def what_different_does(self) -> str:
        if self.kind is PairKind.LOOKALIKE:
            return "record them as different fish"
        if self.other_individual_id and self.other_individual_id != self.individual_id:
            return f"it stays {self.individual_id}"
        return "the photo becomes a new individual"


def older_first(first: str, second: str) -> tuple[str, str]:
    """The entry that keeps its id in a merge (the older, lower number) first."""
    older, newer = sorted((first, second), key=lambda label: (len(label), label))
    return older, newer


def review_pairs(store: Store) -> list[Pair]:
    """Every sighting waiting for a person, as `finprint review` lists them."""
    return [
        Pair(
            PairKind.REVIEW,
            str(row["now_in"]),
            row["proposed"],
            str(row["photo_id_full"]),
            row["matched_photo_id"],
            str(row["question"]),
            row["distance"],
            row["probability"],
            row["inliers"],
            row["caution"],
        )
        for row in store.query("review_queue").records()
    ]


@dataclass
class Queue:
    """The questions in the order a person answers them: the review band first, then the last
    night's new entries with their first look-alikes. Look-alikes are computed once per night
    (exact distances over the whole catalogue: seconds at 100,000 photos) and then only checked
    for being still open; pairs skipped in this session come last."""

    card: ModelCard | None
    skipped: list[str] = field(default_factory=list)
    _lookalikes_of_run: tuple[int | None, list[Lookalike]] | None = None

    def open_pairs(self, store: Store) -> list[Pair]:
        """Every pair still waiting, without photos for the look-alikes (`with_photos` adds them)."""
        pairs = review_pairs(store) + self._open_lookalikes(store)
        order = {key: position for position, key in enumerate(self.skipped)}
        return sorted(pairs, key=lambda pair: (pair.key in order, order.get(pair.key, 0)))

    def skip(self, key: str) -> None:
        if key in self.skipped:
            self.skipped.remove(key)
        self.skipped.append(key)

    def find(self, store: Store, key: str) -> Pair:
        """The open pair a page posted back (without its photos: answering needs none);
        PairDecided when it is no longer open."""
        kind = key.split(":", 1)[0]
        candidates = review_pairs(store) if kind == PairKind.REVIEW else self._open_lookalikes(store)
        for pair in candidates:
            if pair.key == key:
                return pair
        raise PairDecided()

    def _open_lookalikes(self, store: Store) -> list[Pair]:
        if self.card is None:
            return []
        run_id = store.latest_run_id()
        if self._lookalikes_of_run is None or self._lookalikes_of_run[0] != run_id:
            try:
                found = lookalikes(store, self.card, store.individuals_of_last_night(), LOOKALIKES_PER_ENTRY)
            except FinprintError:  # indexed with another model: its distances would say nothing
                found = []
            self._lookalikes_of_run = (run_id, found)
        found = self._lookalikes_of_run[1]
        entries = {f.individual_id for f in found} | {f.candidate_id for f in found}
        fields = store.individual_fields(sorted(entries))
        live = {entry for entry, values in fields.items() if values["merged_into"] is None}
        different = store.ruled_different()
        pairs: dict[frozenset[str], Pair] = {}
        for f in found:
            both = frozenset((f.individual_id, f.candidate_id))
            if both in pairs or both in different or not both <= live:
                continue
            pairs[both] = Pair(
                PairKind.LOOKALIKE,
                f.individual_id,
                f.candidate_id,
                "",
                None,
                f"new entry {f.individual_id}: the same fish as its look-alike {f.candidate_id}?",
                f.distance,
            )
        return list(pairs.values())


def with_photos(store: Store, card: ModelCard | None, pair: Pair) -> Pair:
    """A look-alike pair with the two photos nearest each other; a review pair as it is."""
    if pair.kind is PairKind.REVIEW or card is None or pair.other_individual_id is None:
        return pair
    nearest = nearest_photos(store, card, pair.individual_id, pair.other_individual_id)
    if nearest is None:
        return pair
    photo, other_photo, distance = nearest
    return replace(pair, photo_id=photo, other_photo_id=other_photo, distance=distance)


def answer(store: Store, queue: Queue, key: str, said: Answer, reason: str) -> int:
    """Record a person's answer to an open pair through the same decisions as the command line
    (`confirm`/`reject` for a review question, `merge`/`different` for a look-alike); returns the
    decision's number. PairDecided when the pair was settled since the page showed it."""
    pair = queue.find(store, key)
    if key in queue.skipped:
        queue.skipped.remove(key)
    if pair.kind is PairKind.REVIEW:
        # Open means in the review queue now: the sighting is still in review where it was.
        decide = decisions.confirm if said is Answer.SAME else decisions.reject
        return decide(store, [pair.photo_id], reason)
    keep, fold = older_first(pair.individual_id, pair.other_individual_id or "")
    if said is Answer.SAME:
        return decisions.merge(store, keep, fold, reason)
    return decisions.different(store, keep, fold, reason)
