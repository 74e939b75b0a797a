"""Identification: nearest catalogued photos through HNSW graphs, decided by a distance threshold
or, with keypoint verification, by the fused probability of being the same individual."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import hnswlib
import numpy as np

from catalog.digest import file_sha256
from catalog.fusion import Fusion
from catalog.verify import (
    EMPTY_MATCH,
    SIFT,
    DecisiveLines,
    Detector,
    LocalFeatures,
    PairMatch,
    distinctive_masks,
)
from catalog.vocabulary import Caution, Partition, SightingStatus

# HNSW parameters, measured with `just bench scale --sizes 10000,100000,1000000` (dim 128, a night
# of 10,000 photos, half re-sightings): M=16 and ef_construction=200. On embeddings shaped like the
# default model's (few effective dimensions), this query ef schedule gives recall@10 1.000 at 10k
# and 100k and 0.9999 at 1M, 10,000 photos assigned against 1M in 13-15 s, graph 0.88 GB. On the
# isotropic stress case (every dimension used, strangers all nearly equidistant) recall@10 falls
# to 0.977 at 100k and 0.882 at 1M, though every neighbour within the decision distance is still
# found; there M=32 lifted 300k from 0.965 to 0.997 at ef 1024 for 1.6x the build time.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200


def query_ef(photos_in_graph: int) -> int:
    """The graph search breadth for a catalogue of this size: wide enough for recall@10 >= 0.99."""
    if photos_in_graph <= 20_000:
        return 256
    return 512 if photos_in_graph <= 200_000 else 1024


_INITIAL_CAPACITY = 1024
# With verification, besides its shortlist a new photo is matched against the nearest photo of up
# to this many other individuals from the next nearest: a keypoint that agrees with two animals is
# on what their photos share (a board, a colour card, a logo, one beach), not on either animal,
# and a shortlist of one individual's photos cannot show that.
REFERENCE_INDIVIDUALS = 8
# How far past the shortlist the graph is searched for them, in shortlists.
_REFERENCE_WINDOW = 2
# How many of an individual's nearest photos the chaining guard averages over.
_LINKAGE_PHOTOS = 3


@dataclass(frozen=True)
class Assignment:
    """The decision for one photo."""

    individual_id: str | None  # None: a new individual
    status: SightingStatus  # new, matched or review: a person confirms
    distance: float | None
    matched_photo_id: str | None
    second_individual_id: str | None = None
    second_distance: float | None = None
    # With verification: keypoint inliers with the matched photo, and the fused P(same individual).
    inliers: int | None = None
    probability: float | None = None
    # The distance the decision was taken on: `distance` (to the matched photo) except for an
    # individual first seen tonight, joined by average linkage (see `assign`).
    decision_distance: float | None = None
    # The keypoint correspondences with the matched photo that were counted (DecisiveLines bytes).
    keypoint_lines: bytes | None = None
    # Why keypoints were held back (a vocabulary.Caution), for the reports; None when they were not.
    caution: str | None = None


class KeypointSource(Protocol):
    """Where identification gets photos' keypoints (the night: its memory, then the keypoints file)."""

    def __call__(self, photo_ids: list[str], /) -> dict[str, LocalFeatures]: ...


@dataclass(frozen=True)
class Verification:
    """What identification needs to verify a shortlist: the fusion, and cached keypoints by photo."""

    fusion: Fusion
    features_of: KeypointSource
    # What made the keypoints `features_of` gives, and matches them.
    detector: Detector = SIFT


def partition_key(side: str | None, crop: str | None, sides_split: bool) -> Partition:
    """The partition of a photo: same crop, and same flank when sides are split."""
    return Partition(f"{(side or '*') if sides_split else '*'}/{crop or '*'}")


def _room_for(photos: int) -> int:
    """A new or loaded graph's capacity: twice its photos, so most nights add without a resize."""
    return max(_INITIAL_CAPACITY, 2 * photos)


class _GraphDisagrees(Exception):
    """A saved graph that loads but does not hold one vector per photo of its list."""


@dataclass
class _Graph:
    """One partition's HNSW graph and who each of its photos is (graph label = list position)."""

    index: hnswlib.Index
    photo_ids: list[str] = field(default_factory=list)
    individual_ids: list[str] = field(default_factory=list)
    # Vectors added since the last `prefetch`, searched exactly by the prefetched photos.
    tail_start: int = -1
    tail: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def empty(cls, dim: int, photos: int) -> _Graph:
        """A graph with room for `photos` and as many again."""
        index = hnswlib.Index(space="l2", dim=dim)
        index.init_index(max_elements=_room_for(photos), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        return cls(index)

    @classmethod
    def load(cls, path: Path, dim: int, photo_ids: list[str], individual_ids: list[str]) -> _Graph:
        """A saved graph, with room to grow; raises if its file does not hold one vector per photo."""
        index = hnswlib.Index(space="l2", dim=dim)
        index.load_index(str(path), max_elements=_room_for(len(photo_ids)))
        if index.get_current_count() != len(photo_ids):
            raise _GraphDisagrees("disagrees with its photo list")
        return cls(index, photo_ids, individual_ids)

    def extend(self, photo_ids: list[str], individual_ids: list[str], vectors: np.ndarray) -> None:
        """Add photos (growing the graph as needed); vectors added after a prefetch are also kept
        apart, for the prefetched photos' exact search."""
        vectors = np.asarray(vectors, dtype=np.float32)
        needed = len(self.photo_ids) + len(photo_ids)
        if needed > self.index.get_max_elements():
            self.index.resize_index(max(needed, 2 * self.index.get_max_elements()))
        self.index.add_items(vectors, np.arange(len(self.photo_ids), needed))
        if self.tail_start >= 0:
            self.tail.extend(vectors)
        self.photo_ids.extend(photo_ids)
        self.individual_ids.extend(individual_ids)

    def knn(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels and squared distances of each vector's k nearest photos, searched wide enough
        for this graph's size (hnswlib spreads a batch over the cores)."""
        self.index.set_ef(max(query_ef(len(self.photo_ids)), 2 * k))
        labels, squared = self.index.knn_query(np.asarray(vectors, dtype=np.float32), k=k, num_threads=-1)
        return labels, squared

    def save(self, path: Path) -> None:
        self.index.save_index(str(path))


@dataclass(frozen=True)
class Prefetched:
    """A photo's graph neighbours, queried with the rest of its batch before any was added."""

    labels: np.ndarray
    squared: np.ndarray
    graph_size: int  # photos in the graph at the query


MANIFEST_NAME = "manifest.json"


def _verdict(
    proposal: Assignment,
    first: float,
    second: float | None,
    linkage: float,
    *,
    accept_above: float,
    band: float,
) -> Assignment:
    """Decide on `proposal` (the best individual, the runner-up as second) from scores where higher
    is more alike: the best individual's, the runner-up's, and the best one's mean over its nearest
    photos (the chaining guard: A~B and B~C with A far from C)."""
    if first <= accept_above:
        # A new individual; the nearest photo is kept so a reviewer sees which fish it nearly matched.
        status = SightingStatus.REVIEW if first > accept_above - band else SightingStatus.NEW
        return replace(
            proposal, individual_id=None, status=status, second_individual_id=None, second_distance=None
        )
    if second is not None and second > accept_above:
        # Close to two individuals: a possible merge for a person to decide, never made here.
        return replace(proposal, status=SightingStatus.REVIEW)
    chained = linkage <= accept_above
    status = SightingStatus.REVIEW if chained or first <= accept_above + band else SightingStatus.MATCHED
    return replace(proposal, status=status, second_individual_id=None, second_distance=None)


def decision_rule(
    distance_threshold: float, review_band_fraction: float, fusion: Fusion | None, grouped: bool
) -> str:
    """The rule a run decides by, in words, for its reports."""
    if fusion is None:
        rule = (
            f"a match needs a distance under {distance_threshold:.3f} to a catalogued photo of the same "
            f"view (embedding alone); within {review_band_fraction:.0%} of that, or close to two "
            "individuals, the photo goes to review"
        )
    else:
        rule = (
            f"a match needs P(same), fused from the embedding distance and the agreeing keypoints "
            f"({fusion.detector}), over "
            f"{fusion.threshold_probability:.2f}; near that, or close to two individuals, the photo goes "
            "to review. P(same) is calibrated on as many pairs of one animal as of two, so it ranks "
            "matches; it is not the chance that a match is right, since most candidates are strangers"
        )
    if grouped:
        rule += (
            f"; then tonight's photos of one animal (distance under {distance_threshold:.3f}) are decided "
            "together, each group one decision listed by finprint decisions"
        )
    return rule + "."


class Identifier:
    """Holds the catalogue's embeddings per partition and decides who each new photo is."""

    def __init__(
        self,
        dim: int,
        distance_threshold: float,
        review_band_fraction: float,
        neighbours_k: int,
        verification: Verification | None = None,
    ) -> None:
        self.dim = dim
        self.verification = verification
        self.distance_threshold = distance_threshold
        self.review_band_fraction = review_band_fraction
        self.neighbours_k = neighbours_k
        self._graphs: dict[Partition, _Graph] = {}
        self._tonight: set[str] = set()

    def __len__(self) -> int:
        return sum(len(g.photo_ids) for g in self._graphs.values())

    def mark_new(self, individual_id: str) -> None:
        """An individual created in this run: it is joined by average linkage (see `assign`)."""
        self._tonight.add(individual_id)

    def add(
        self, partition: Partition, photo_ids: list[str], individual_ids: list[str], vectors: np.ndarray
    ) -> None:
        """Put catalogued photos into their partition's graph."""
        if not photo_ids:
            return
        graph = self._graphs.get(partition)
        if graph is None:
            graph = self._graphs[partition] = _Graph.empty(self.dim, len(photo_ids))
        graph.extend(photo_ids, individual_ids, vectors)

    def save(self, directory: Path, model_version: str) -> None:
        """Write every graph beside the catalogue; the manifest is replaced last, atomically, so a
        kill leaves either the old graphs or the new ones, never a mix."""
        directory.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:8]
        partitions = []
        for number, (key, graph) in enumerate(sorted(self._graphs.items())):
            index_file, ids_file = f"p{number}-{token}.bin", f"p{number}-{token}.ids"
            graph.save(directory / index_file)
            (directory / ids_file).write_text("\n".join(graph.photo_ids), encoding="utf-8")
            # hnswlib reports no failed write: a graph file smaller than its vectors alone was cut
            # short (a full disk), and is not offered to the next night.
            if (directory / index_file).stat().st_size < len(graph.photo_ids) * self.dim * 4:
                raise OSError(f"{directory / index_file}: written short (is the disk full?)")
            partitions.append(
                {
                    "key": key, "index": index_file, "ids": ids_file, "count": len(graph.photo_ids),
                    "index_sha256": file_sha256(directory / index_file),
                    "ids_sha256": file_sha256(directory / ids_file),
                }
            )  # fmt: skip
        manifest = {"model_version": model_version, "dim": self.dim, "partitions": partitions}
        partial = directory / f"{MANIFEST_NAME}.{token}"
        partial.write_text(json.dumps(manifest), encoding="utf-8")
        partial.replace(directory / MANIFEST_NAME)
        keep = {MANIFEST_NAME} | {p["index"] for p in partitions} | {p["ids"] for p in partitions}
        for stale in directory.iterdir():
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def load(
        self,
        directory: Path,
        model_version: str,
        owners: dict[Partition, dict[str, str]],
        discarded: list[str] | None = None,
    ) -> dict[Partition, list[str]]:
        """Load saved graphs whose photos are all still catalogued (`owners`: partition -> photo ->
        individual, from DuckDB, the source of truth); returns, per partition, the catalogued
        photos the graph lacks and the caller must add. A partition that cannot be trusted (its
        files' sha256 differ from the manifest's, or its photos are gone) is left out, so it is
        rebuilt from DuckDB, and why is appended to `discarded`."""
        notes = discarded if discarded is not None else []
        missing = {key: sorted(photos) for key, photos in owners.items()}
        try:
            manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return missing
        if manifest.get("model_version") != model_version or manifest.get("dim") != self.dim:
            return missing
        for entry in manifest.get("partitions", []):
            key = entry.get("key")
            if key not in owners:
                continue
            try:
                ids_bytes = (directory / entry["ids"]).read_bytes()
                # Checked before hnswlib reads a byte: changed bytes in its file crash the process.
                if (
                    file_sha256(directory / entry["index"]) != entry["index_sha256"]
                    or hashlib.sha256(ids_bytes).hexdigest() != entry["ids_sha256"]
                ):
                    notes.append(
                        f"saved graph {entry['index']} failed its checksum; rebuilt from the catalogue"
                    )
                    continue
                photo_ids = [p for p in ids_bytes.decode("utf-8").split("\n") if p]
                if len(photo_ids) != entry["count"] or not set(photo_ids) <= owners[key].keys():
                    continue  # a photo in the graph is gone from the catalogue: rebuild this one
                graph = _Graph.load(
                    directory / entry["index"], self.dim, photo_ids, [owners[key][p] for p in photo_ids]
                )
            except _GraphDisagrees as exc:
                notes.append(f"saved graph {entry['index']} {exc}; rebuilt")
                continue
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                notes.append(f"saved graph {entry.get('index')} could not be used ({exc}); rebuilt")
                continue
            self._graphs[key] = graph
            present = set(photo_ids)
            missing[key] = [p for p in missing[key] if p not in present]
        return missing

    def _shortlist_k(self, verifying: bool) -> int:
        return max(
            self.neighbours_k, self.verification.fusion.shortlist_k if verifying and self.verification else 0
        )

    def _wanted_k(self, verifying: bool) -> int:
        """Neighbours to search: the shortlist, and with verification the window references come from."""
        shortlist = self._shortlist_k(verifying)
        return shortlist * (1 + _REFERENCE_WINDOW) if verifying and self.verification else shortlist

    def prefetch(self, partition: Partition, vectors: np.ndarray) -> list[Prefetched | None]:
        """Query the graph for a whole batch at once (hnswlib spreads it over the cores); photos the
        batch adds afterwards are searched exactly by `assign`, so each decision sees the same
        catalogue as if every photo had been queried one after the other."""
        graph = self._graphs.get(partition)
        if graph is None or not graph.photo_ids or not len(vectors):
            return [None] * len(vectors)
        k = min(self._wanted_k(self.verification is not None), len(graph.photo_ids))
        labels, squared = graph.knn(vectors, k)
        graph.tail_start, graph.tail = len(graph.photo_ids), []
        return [Prefetched(labels[i], squared[i], graph.tail_start) for i in range(len(vectors))]

    def nearest_individuals(
        self, partition: Partition, vectors: np.ndarray, leave_out: set[str]
    ) -> list[dict[str, float]]:
        """For each vector, each individual among its nearest catalogued photos with the distance
        to its nearest photo; photos in `leave_out` (the night's own in this partition) not
        counted."""
        graph = self._graphs.get(partition)
        if graph is None or not len(vectors):
            return [{} for _ in range(len(vectors))]
        # Enough neighbours that `neighbours_k` remain once the left-out photos are skipped.
        k = min(self.neighbours_k + len(leave_out), len(graph.photo_ids))
        if k == 0:
            return [{} for _ in range(len(vectors))]
        labels, squared = graph.knn(vectors, k)
        result: list[dict[str, float]] = []
        for row_labels, row_squared in zip(labels, squared, strict=True):
            nearest: dict[str, float] = {}
            for label, sq in zip(row_labels.tolist(), row_squared.tolist(), strict=True):
                if graph.photo_ids[label] not in leave_out:
                    nearest.setdefault(graph.individual_ids[label], float(np.sqrt(max(sq, 0.0))))
            result.append(nearest)
        return result

    def _nearest(
        self, graph: _Graph, vector: np.ndarray, k: int, prefetched: Prefetched | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and squared distances of the k nearest catalogued photos, nearest first."""
        query = np.asarray(vector, dtype=np.float32)
        if prefetched is None or prefetched.graph_size != graph.tail_start:
            labels, squared = graph.knn(query[None, :], k)
            return labels[0], squared[0]
        labels, squared = prefetched.labels[:k], prefetched.squared[:k]
        if graph.tail:
            tail = np.stack(graph.tail)
            labels = np.concatenate([labels, np.arange(graph.tail_start, graph.tail_start + len(tail))])
            squared = np.concatenate([squared, ((tail - query) ** 2).sum(axis=1)])
        order = np.argsort(squared, kind="stable")[:k]
        return labels[order], squared[order]

    def assign(
        self,
        partition: Partition,
        vector: np.ndarray,
        features: LocalFeatures | None = None,
        prefetched: Prefetched | None = None,
    ) -> Assignment:
        """Nearest individual under the threshold, else new; doubtful cases get status review.

        With verification (and the photo's `features`), the shortlist's keypoint inliers join the
        distances in one fused score, and the decision is taken on that score instead."""
        graph = self._graphs.get(partition)
        if graph is None or not graph.photo_ids:
            return Assignment(None, SightingStatus.NEW, None, None)
        verification = self.verification if features is not None else None
        k = min(self._wanted_k(verification is not None), len(graph.photo_ids))
        labels, squared = self._nearest(graph, vector, k, prefetched)
        shortlist = self._shortlist_k(verification is not None)
        references = _references(
            graph, labels[shortlist:], {graph.individual_ids[int(x)] for x in labels[:shortlist]}
        )
        labels, squared = labels[:shortlist], squared[:shortlist]
        best: dict[str, tuple[float, str]] = {}
        distances_to: dict[str, list[float]] = {}
        neighbours: list[tuple[str, str, float]] = []
        for label, sq in zip(labels, squared, strict=True):
            individual = graph.individual_ids[int(label)]
            photo_id = graph.photo_ids[int(label)]
            distance = float(np.sqrt(max(float(sq), 0.0)))
            neighbours.append((individual, photo_id, distance))
            distances_to.setdefault(individual, []).append(distance)
            if individual not in best or distance < best[individual][0]:
                best[individual] = (distance, photo_id)
        # An individual first seen tonight is joined by average linkage (mean distance to its
        # photos among the neighbours), not by its nearest photo: single linkage would chain
        # look-alikes photographed tonight (A~B, B~C) into one fish before anyone could check.
        # A night-wide clustering (mutual neighbours) would have to wait for the last photo,
        # breaking the one-transaction-per-batch crash safety; this decides photo by photo.
        nearest = {individual: distance for individual, (distance, _) in best.items()}
        for individual in best.keys() & self._tonight:
            best[individual] = (float(np.mean(distances_to[individual])), best[individual][1])
        if verification is not None and features is not None:
            return self._decide_fused(verification, features, neighbours, best, references)
        ranked = sorted(best.items(), key=lambda item: item[1][0])
        first_id, (first_distance, first_photo) = ranked[0]
        second_id, second_distance = (ranked[1][0], ranked[1][1][0]) if len(ranked) > 1 else (None, None)
        threshold = self.distance_threshold
        proposal = Assignment(
            first_id, SightingStatus.MATCHED, nearest[first_id], first_photo, second_id, second_distance,
            decision_distance=first_distance,
        )  # fmt: skip
        # Distances enter the verdict negated: it reads scores where higher is more alike.
        return _verdict(
            proposal,
            -first_distance,
            None if second_distance is None else -second_distance,
            -float(np.mean(sorted(distances_to[first_id])[:_LINKAGE_PHOTOS])),
            accept_above=-threshold,
            band=threshold * self.review_band_fraction,
        )

    def _decide_fused(
        self,
        verification: Verification,
        features: LocalFeatures,
        neighbours: list[tuple[str, str, float]],
        best: dict[str, tuple[float, str]],
        references: list[tuple[str, str]],
    ) -> Assignment:
        """The decision on fused scores: the same rules as on distances (threshold, review band,
        a second individual above the threshold, the chaining guard), on evidence from both.

        Keypoints count only where they are the animal's: not on what another individual's photo
        also shows (shortlist and `references`), not on the very same pixels (one photograph seen
        twice). And they never join past the embedding: an individual beyond the fusion's reach
        is at most review."""
        fusion = verification.fusion
        owner_of = {photo_id: individual for individual, photo_id, _ in neighbours}
        owner_of.update({photo_id: individual for individual, photo_id in references})
        cached = verification.features_of(list(owner_of))
        # A catalogued photo without keypoints (indexed before verification) counts as 0 inliers:
        # it can then only split a fish, never merge two.
        shortlisted = [photo_id for _, photo_id, _ in neighbours if photo_id in cached]
        referenced = [photo_id for _, photo_id in references if photo_id in cached]
        agreements = verification.detector.match_many(
            features, [cached[photo_id] for photo_id in shortlisted]
        )
        agreements += _reference_matches(
            verification.detector, features, agreements, [cached[p] for p in referenced]
        )
        described = shortlisted + referenced
        agreement_of = dict(zip(described, agreements, strict=True))
        # A reference takes keypoints away only where it agrees on a whole structure, as much as
        # keypoints must to join a pair at the threshold's distance (a board, a card, one rock
        # face), not on the few chance agreements any two photos of one species have (an eye, a
        # fin's tip): counting those cost drawn fish 6% of their automatic re-sightings.
        weak = {
            photo_id
            for photo_id in referenced
            if fusion.score(self.distance_threshold, agreement_of[photo_id].inliers) <= fusion.score_threshold
        }
        sharing = [EMPTY_MATCH if photo_id in weak else agreement_of[photo_id] for photo_id in described]
        # A photo that is one photograph with the new one gives no evidence at all. Identical
        # pixels in a smaller share of a match count as any (a rigidly drawn fish shows many;
        # stamps are left to the references and the reach): discounting them too cost drawn fish
        # 11% of their automatic re-sightings in bench-nights and kept out no wrong merge.
        copies = {p for p in shortlisted if agreement_of[p].one_photograph(features.size)}
        # Counted keypoints, per shortlisted photo (a reference's matches only take keypoints away).
        masks = distinctive_masks(sharing, [owner_of[p] for p in described])[: len(shortlisted)]
        counted = {
            photo_id: mask & (photo_id not in copies)
            for photo_id, mask in zip(shortlisted, masks, strict=True)
        }
        photo_inliers = {photo_id: 0 for _, photo_id, _ in neighbours}
        photo_inliers.update({photo_id: int(mask.sum()) for photo_id, mask in counted.items()})
        limits = self._score_limits(fusion, best)
        photo_scores: dict[str, list[float]] = {}
        inliers_of: dict[str, tuple[int, str]] = {}
        for individual, photo_id, distance in neighbours:
            inliers = photo_inliers[photo_id]
            photo_scores.setdefault(individual, []).append(
                min(float(fusion.score(distance, inliers)), limits.get(individual, np.inf))
            )
            if individual not in inliers_of or inliers > inliers_of[individual][0]:
                inliers_of[individual] = (inliers, photo_id)
        unlimited = {
            individual: float(fusion.score(distance, inliers_of[individual][0]))
            for individual, (distance, _) in best.items()
        }
        scored = {
            individual: min(score, limits.get(individual, np.inf)) for individual, score in unlimited.items()
        }
        ranked = sorted(scored, key=lambda individual: -scored[individual])
        first_id = ranked[0]
        first_distance = best[first_id][0]
        first_inliers, verified_photo = inliers_of[first_id]
        # The photo shown to a reviewer: the one with the most keypoint agreement, else the nearest.
        first_photo = verified_photo if first_inliers > 0 else best[first_id][1]
        caution = None
        if scored[first_id] < unlimited[first_id] and unlimited[first_id] > fusion.score_threshold:
            caution = Caution.BEYOND_REACH
        # The best candidate's photo that is one photograph with the new one: the match would
        # rest on a copy (or on two crops of one frame), so a person says what it is. A copy among
        # another individual's photos only gives no evidence (its keypoints count for nothing).
        copy_of = next(
            (
                photo_id
                for individual, photo_id, _ in neighbours
                if individual == first_id and photo_id in copies
            ),
            None,
        )
        if copy_of is not None:
            caution, first_photo = Caution.ONE_PHOTOGRAPH, copy_of
        lines = None
        if photo_inliers[first_photo] > 0:
            lines = DecisiveLines(
                agreement_of[first_photo].lines[counted[first_photo]], features.size, cached[first_photo].size
            ).to_bytes()
        second_id = ranked[1] if len(ranked) > 1 else None
        to_photo = {photo_id: distance for _, photo_id, distance in neighbours}
        proposal = Assignment(
            first_id,
            SightingStatus.MATCHED,
            to_photo[first_photo],
            first_photo,
            second_id,
            None if second_id is None else best[second_id][0],
            inliers=photo_inliers[first_photo],
            probability=float(
                fusion.probability(first_distance, min(first_inliers, photo_inliers[first_photo]))
            ),
            decision_distance=first_distance,
            keypoint_lines=lines,
            caution=caution,
        )
        verdict = _verdict(
            proposal,
            scored[first_id],
            None if second_id is None else scored[second_id],
            float(np.mean(sorted(photo_scores[first_id], reverse=True)[:_LINKAGE_PHOTOS])),
            accept_above=fusion.score_threshold,
            band=fusion.review_margin(self.distance_threshold, self.review_band_fraction),
        )
        # One photograph seen twice is never decided alone, either way: a person says what it is.
        return (
            replace(verdict, status=SightingStatus.REVIEW) if caution == Caution.ONE_PHOTOGRAPH else verdict
        )

    def _score_limits(self, fusion: Fusion, best: dict[str, tuple[float, str]]) -> dict[str, float]:
        """The highest fused score each candidate individual may reach: the decision point itself
        (review at most) where the embedding puts it beyond the keypoints' reach.

        (Also capping individuals past the threshold when fewer than two others were there to
        weigh keypoints against was measured and dropped: on a drawn archive with a shared board,
        stamps and twice-cut pair photos it prevented no wrong merge the reach did not, and it cost
        a clean drawn archive 11 points of pairwise recall, the first photos of each view split.)"""
        reach = fusion.reach(self.distance_threshold)
        return {
            individual: fusion.score_threshold
            for individual, (distance, _) in best.items()
            if distance >= reach
        }


def _reference_matches(
    detector: Detector, features: LocalFeatures, shortlist: list[PairMatch], references: list[LocalFeatures]
) -> list[PairMatch]:
    """The references' matches, on the new photo's keypoints that agree with some shortlisted photo
    only: no other keypoint can be taken away, and matching a few dozen keypoints instead of every
    one keeps the references' cost small (a verified nyala night ran 15-25% slower matching them
    whole)."""
    asked = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *(m.query_keypoints for m in shortlist)]))
    if len(asked) < 3 or not references:
        return [EMPTY_MATCH] * len(references)
    subset = LocalFeatures(features.points[asked], features.descriptors[asked], features.size)
    return [
        replace(match, query_keypoints=asked[match.query_keypoints])
        for match in detector.match_many(subset, references)
    ]


def _references(graph: _Graph, labels: np.ndarray, shortlisted: set[str]) -> list[tuple[str, str]]:
    """(individual, photo) for the nearest photo of up to REFERENCE_INDIVIDUALS individuals beyond
    the shortlist's, nearest first."""
    chosen: dict[str, str] = {}
    for label in labels.tolist():
        if len(chosen) >= REFERENCE_INDIVIDUALS:
            break
        individual = graph.individual_ids[int(label)]
        if individual not in shortlisted and individual not in chosen:
            chosen[individual] = graph.photo_ids[int(label)]
    return list(chosen.items())
