"""People's decisions on the catalogue: confirm, reject, merge, split, rename, and undo."""

from __future__ import annotations

import re

from catalog.errors import FinprintError, UnknownIndividual
from catalog.store import DecisionRow, IndividualRow, Replaced, Store, individual_label
from catalog.vocabulary import FINPRINT, DecisionAction, SightingStatus

# What a catalogue id looks like (store.individual_label), in any case.
ID_LIKE = re.compile(r"fp-\d+", re.IGNORECASE)
# A status no automatic run sets or changes: a person looked at this sighting.
CONFIRMED = SightingStatus.CONFIRMED.value


def _record(
    store: Store,
    action: DecisionAction,
    reason: str,
    sightings: dict[str, tuple[str, str]],
    individuals: dict[str, dict[str, str | None]],
    *,
    created: tuple[IndividualRow, ...] = (),
    **about: str | None,
) -> int:
    """Record a decision with what it replaces (the photos' sightings and the individuals' fields
    as they are now, and what it creates): exactly what `undo` puts back."""
    replaced = Replaced(
        store.sighting_states(sorted(sightings)),
        store.individual_fields(list(individuals)),
        [row.individual_id for row in created],
    )
    return store.record_decision(
        DecisionRow(action.value, reason, sightings, individuals, list(created), replaced, **about)
    )


def _resolved_photos(store: Store, photos: list[str]) -> list[str]:
    ids = []
    for token in photos:
        photo_id = store.resolve_photo(token)
        if photo_id is None:
            raise FinprintError(
                f"{token}: no such photo in {store.db_path}. Give the path as catalogued "
                "(see `finprint review`) or at least 8 characters of its photo id."
            )
        ids.append(photo_id)
    return ids


def _resolved(store: Store, token: str) -> str:
    """The catalogue id a decision acts on, for an FP- id, a name, or an id merged into another:
    every decision resolves its individuals here, once, and then uses only the resolved id."""
    individual_id = store.resolve_individual(token)
    if individual_id is None:
        raise UnknownIndividual(token, store.db_path)
    return individual_id


def _new_individual(store: Store, like: str, first_photo: str, offset: int = 0) -> IndividualRow:
    """A new individual with the same flank and crop as `like`."""
    number = store.next_individual_number() + offset
    side, crop = store.individual_view(like)
    return IndividualRow(individual_label(number), number, side, crop, first_photo)


def _photo_ids(store: Store, photos: list[str]) -> list[str]:
    """Each photo once, in the order given, by path or id prefix."""
    return list(dict.fromkeys(_resolved_photos(store, photos)))


def _kept_apart(store: Store, ids: list[str]) -> dict[str, str]:
    """photo -> the individual identification proposed, for the photos it kept apart from that
    individual ("kept apart from X: same fish?" in the review queue)."""
    states = store.sighting_states(ids)
    proposed = store.proposed_individuals(ids)
    return {
        p: proposal
        for p, proposal in proposed.items()
        if proposal is not None and states[p][1] == SightingStatus.REVIEW and proposal != states[p][0]
    }


def _emptied(store: Store, moving: dict[str, str]) -> dict[str, dict[str, str | None]]:
    """Individuals every photo of which moves (photo -> new individual): each then points where
    its photos went, as a merge leaves it, so that no entry is left empty."""
    states = store.sighting_states(list(moving))
    folded: dict[str, dict[str, str | None]] = {}
    for individual in {states[p][0] for p in moving}:
        photos = store.photos_of(individual)
        targets = {moving.get(p) for p in photos}
        if len(targets) == 1 and None not in targets:
            folded[individual] = {"merged_into": targets.pop()}
    return folded


def confirm(store: Store, photos: list[str], reason: str) -> int:
    """finprint's proposal for these photos is right: a match is confirmed where it stands, and a
    photo kept apart from a proposed individual ("same fish?") joins it (its entry, if left with
    no photo, then points there)."""
    ids = _photo_ids(store, photos)
    states = store.sighting_states(ids)
    apart = _kept_apart(store, ids)
    changes = {p: (apart.get(p, states[p][0]), CONFIRMED) for p in ids}
    unchanged = [p for p in ids if changes[p] == states[p]]
    if unchanged:
        photo = unchanged[0]
        raise FinprintError(
            f"photo {photo[:12]} is already confirmed as {states[photo][0]}; nothing was changed."
        )
    return _record(store, DecisionAction.CONFIRM, reason, changes, _emptied(store, apart))


def reject(store: Store, photos: list[str], reason: str) -> int:
    """finprint's proposal for these photos is wrong: a matched photo starts a new individual; a
    photo kept apart from a proposed individual ("same fish?") stays apart, where it is."""
    ids = _photo_ids(store, photos)
    states = store.sighting_states(ids)
    apart = _kept_apart(store, ids)
    # A photo alone in its entry is already apart: a new entry would leave an empty one behind.
    alone = {p for p in ids if p not in apart and store.photos_of(states[p][0]) == [p]}
    done = [p for p in alone if states[p][1] == CONFIRMED]
    if done:
        raise FinprintError(
            f"photo {done[0][:12]} is already its own individual, {states[done[0]][0]}; nothing was changed."
        )
    moving = [p for p in ids if p not in apart and p not in alone]
    created = [_new_individual(store, states[p][0], p, offset) for offset, p in enumerate(moving)]
    changes = {p: (states[p][0], CONFIRMED) for p in ids}
    changes.update({p: (new.individual_id, CONFIRMED) for p, new in zip(moving, created, strict=True)})
    return _record(store, DecisionAction.REJECT, reason, changes, {}, created=tuple(created))


def merge(store: Store, keep: str, fold: str, reason: str) -> int:
    """`fold` is the same fish as `keep`: its sightings move to `keep`; its id stays, pointing there."""
    keep_token, fold_token = keep, fold
    keep, fold = _resolved(store, keep), _resolved(store, fold)
    if keep == fold:
        raise FinprintError(
            f"{fold_token}: is already {keep} (the same individual as {keep_token}); nothing to merge."
        )
    states = store.sighting_states(store.photos_of(fold))
    changes = {p: (keep, status) for p, (_, status) in states.items()}
    return _record(
        store,
        DecisionAction.MERGE,
        reason,
        changes,
        {fold: {"merged_into": keep}},
        individual_id=keep,
        other_individual_id=fold,
    )


def view_mismatch(store: Store, keep: str, fold: str) -> str | None:
    """Why merging these two entries is probably not what a person means: different flanks or
    crops of one fish are linked (`link`), not merged; None when their views agree."""
    keep, fold = _resolved(store, keep), _resolved(store, fold)
    views = zip(("flank", "crop"), store.individual_view(keep), store.individual_view(fold), strict=True)
    for what, kept, folded in views:
        if kept and folded and kept != folded:
            return (
                f"{keep} is a {kept} {what} and {fold} a {folded} {what}: merged, one entry holds both, and "
                f"new photos of either are matched against both. If they are two views of one fish, "
                f"`finprint undo` this and `finprint link {keep} {fold}` instead."
            )
    return None


def regroup(store: Store, keep: str, photos: list[str], reason: str) -> list[str]:
    """An automatic decision of the night's grouping (catalog.encounters): these photos of one
    animal move to `keep` (or leave review there) as re-sightings, and individuals left with no
    photo point to it, as a merge would. Recorded and undoable like a person's decision; returns
    the individuals it left empty."""
    moving = set(photos)
    sources = {individual for individual, _ in store.sighting_states(photos).values()}
    emptied = sorted(i for i in sources - {keep} if set(store.photos_of(i)) <= moving)
    changes = {p: (keep, SightingStatus.MATCHED.value) for p in photos}
    folded: dict[str, dict[str, str | None]] = {individual: {"merged_into": keep} for individual in emptied}
    _record(store, DecisionAction.GROUP, reason, changes, folded, individual_id=keep, decided_by=FINPRINT)
    return emptied


def split(store: Store, individual_id: str, photos: list[str], reason: str) -> int:
    """These photos of `individual_id` show another fish: they become one new individual."""
    individual_id = _resolved(store, individual_id)
    ids = _photo_ids(store, photos)
    states = store.sighting_states(ids)
    strangers = [p for p in ids if states[p][0] != individual_id]
    if strangers:
        raise FinprintError(
            f"photo {strangers[0][:12]} is not a sighting of {individual_id}; nothing was changed."
        )
    if len(ids) == len(store.photos_of(individual_id)):
        raise FinprintError(f"{individual_id}: that is every photo of it; use `finprint rename` instead.")
    created = _new_individual(store, individual_id, ids[0])
    changes = {p: (created.individual_id, CONFIRMED) for p in ids}
    return _record(
        store, DecisionAction.SPLIT, reason, changes, {}, created=(created,), individual_id=individual_id
    )


def rename(store: Store, individual_id: str, name: str, reason: str) -> int:
    """Give an individual a name, such as its physical tag number. A name must not look like an
    FP- id (it would hide that individual from every command) nor name another individual."""
    individual_id = _resolved(store, individual_id)
    if ID_LIKE.fullmatch(name.strip()):
        raise FinprintError(
            f"{name!r} looks like a catalogue id: as a name it would stand for another individual in "
            "every command. Choose a name that does not look like FP-000123 (a tag number, a nickname)."
        )
    holder = store.resolve_individual(name)
    if holder is not None and holder != individual_id:
        raise FinprintError(
            f"{name!r} already names {holder}: one name for two individuals would make every command "
            f"that takes it ambiguous. Choose another name, or `finprint merge {holder} {individual_id}` "
            "if they are one fish."
        )
    fields: dict[str, str | None] = {"name": name}
    return _record(
        store,
        DecisionAction.RENAME,
        reason,
        {},
        {individual_id: fields},
        individual_id=individual_id,
        name=name,
    )


def link(store: Store, first: str, second: str, reason: str, decided_by: str | None = None) -> int:
    """Two catalogue entries are flanks (or crops) of one fish: histories of either show both.
    `decided_by`: FINPRINT for the night's own links; default the person running the command."""
    first, second = _resolved(store, first), _resolved(store, second)
    if first == second:
        raise FinprintError(f"{first}: cannot link an individual with itself.")
    members = sorted(set(store.fish_members(first)) | set(store.fish_members(second)))
    if len(members) == len(store.fish_members(first)):
        raise FinprintError(f"{first} and {second} are already linked.")
    fish_id = members[0]
    changes: dict[str, dict[str, str | None]] = {member: {"fish_id": fish_id} for member in members}
    return _record(
        store,
        DecisionAction.LINK,
        reason,
        {},
        changes,
        individual_id=first,
        other_individual_id=second,
        decided_by=decided_by,
    )


def undo(store: Store, decision_id: int) -> str:
    """Put back what a decision replaced; returns its action. A decision is undone once every
    later decision that changed the same photos or entries is (so one made before a night need
    not wait for the night's thousands of group decisions), and never one that created an
    individual later photos were matched to."""
    recorded = store.decision(decision_id)
    if recorded is None:
        raise FinprintError(f"no decision {decision_id}. List them with: finprint decisions")
    action, replaced, undone = recorded
    if undone:
        raise FinprintError(f"decision {decision_id} was already undone.")
    later = _first_overlapping(replaced, store.live_decisions_after(decision_id))
    if later is not None:
        raise FinprintError(
            f"decision {later} came after {decision_id} and changed the same photos or entries; "
            "undo it first."
        )
    _refuse_taken_name(store, decision_id, replaced)
    if replaced.created:
        matched_since = store.sighting_counts(replaced.created, leaving_out=list(replaced.sightings))
        if matched_since:
            who, count = next(iter(matched_since.items()))
            raise FinprintError(
                f"decision {decision_id} created {who}, and {count} later photo(s) were matched to it "
                "since: undoing it would leave them pointing at no fish. Use `finprint merge` or "
                "`finprint split` to correct it instead."
            )
    store.undo_decision(decision_id, replaced)
    return action


def different(store: Store, first: str, second: str, reason: str) -> int:
    """Two catalogue entries are different fish: nothing moves, but the pair is recorded, so that
    look-alike lists and the browser review stop offering it (undo offers it again)."""
    first_token, second_token = first, second
    first, second = _resolved(store, first), _resolved(store, second)
    if first == second:
        raise FinprintError(
            f"{first_token} and {second_token} are one entry ({first}): `finprint split` it instead."
        )
    if frozenset((first, second)) in store.ruled_different():
        raise FinprintError(f"{first} and {second} are already recorded as different fish.")
    return _record(
        store, DecisionAction.DIFFERENT, reason, {}, {}, individual_id=first, other_individual_id=second
    )


def _touched(replaced: Replaced) -> tuple[set[str], set[str]]:
    """The photos a decision moved and the entries whose fields it changed or that it created."""
    return set(replaced.sightings), set(replaced.individuals) | set(replaced.created)


def _first_overlapping(replaced: Replaced, later: list[tuple[int, Replaced]]) -> int | None:
    """The first later decision that changed a photo or an entry this one changed: undoing this
    one first would put back a state that one has since replaced."""
    photos, entries = _touched(replaced)
    for decision_id, theirs in later:
        their_photos, their_entries = _touched(theirs)
        if photos & their_photos or entries & their_entries:
            return decision_id
    return None


def _refuse_taken_name(store: Store, decision_id: int, replaced: Replaced) -> None:
    """Undoing a rename gives back a name another entry may have been given since. Only names
    the undo changes are looked up (a group decision restores dozens of entries' fields)."""
    current = store.individual_fields(list(replaced.individuals))
    for individual, fields in replaced.individuals.items():
        name = fields.get("name")
        if not name or name == current.get(individual, {}).get("name"):
            continue
        holder = store.resolve_individual(name)
        if holder is not None and holder != store.resolve_individual(individual):
            raise FinprintError(
                f"undoing decision {decision_id} would give {individual} back the name {name!r}, which "
                f"{holder} holds now; rename {holder} first."
            )
