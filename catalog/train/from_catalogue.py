"""Fine-tune a catalogue's model on the catalogue's own decisions (`finprint train --from-catalogue`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from catalog import fusion as fusion_module
from catalog.errors import FinprintError, TrainingDataError
from catalog.lookalikes import nearest_by_individual
from catalog.modelcard import ModelCard, read_card
from catalog.offline.labels import read_sources
from catalog.offline.metrics import (
    QueryScores,
    ReidMetrics,
    paired_bootstrap,
    pairwise_distances,
    reid_metrics_by_query,
)
from catalog.offline.training_set import MIN_MATCH_PROBABILITY, TrainingSet, training_set
from catalog.store import Store
from catalog.train.data import Augmenter, PhotoCache, PKSampler, negative_pair_batches, plain_tensors
from catalog.train.export import TrainedOn, export_onnx, trained_card
from catalog.train.loop import (
    calibrate_probability,
    card_metrics,
    embed_all,
    pick_device,
    seed_everything,
    trunk_and_head_groups,
)
from catalog.train.losses import batch_hard_triplet_loss, threshold_pair_loss
from catalog.train.nets import BACKBONES, build_backbone
from catalog.train.onnx_weights import freeze_batchnorm, load_exported_weights
from catalog.train.steps import Optimisation, training_progress
from catalog.vocabulary import Sides

# Different-individual pairs below the current threshold needed to carry its false-match rate to
# the new model by rank; with fewer, a wider tail is matched and the threshold scaled with it.
MIN_TAIL_PAIRS = 20
# Held-out individuals the new model is compared on (rank-1 needs two to mean anything).
MIN_VALIDATION_INDIVIDUALS = 2
# A catalogue of a few hundred trusted photos is one P x K batch an epoch: too few steps to learn
# from; each epoch draws at least this many batches.
MIN_BATCHES_PER_EPOCH = 10
# The source name of labelled folders replayed beside the catalogue.
REPLAY = "replay"
# Photos whose pairs set the new threshold: enough for millions of pairs, few enough for memory.
MAX_THRESHOLD_PHOTOS = 3000
# Two catalogue entries whose nearest photos are as near as this share of the archive's known
# re-sightings (an entry's nearest pair of photos from two of its encounters) may be one animal
# that nobody merged yet: they are not taught as different (see possibly_one_animal).
UNSURE_RESIGHTING_QUANTILE = 0.9


@dataclass(frozen=True)
class CatalogueTrainConfig:
    """Fine-tuning a catalogue's model on its decisions; defaults for a CPU and a few hundred fish."""

    catalogue: Path
    model_path: Path
    out_path: Path
    # Labelled folders replayed beside the catalogue, so the network keeps what it knew.
    data_dirs: tuple[Path, ...] = ()
    epochs: int = 6
    learning_rate: float = 1e-3
    # The trunk at this share of the head's rate: a few hundred photos adjust it, never rewrite it.
    trunk_lr_scale: float = 0.1
    freeze_blocks: int = 4
    individuals_per_batch: int = 16
    photos_per_individual: int = 4
    triplet_margin: float = 0.3
    # Same-individual pairs are pulled this far under the current threshold, others pushed as far
    # beyond it: what the catalogue decides on (catalog.train.losses.threshold_pair_loss).
    threshold_margin: float = 0.1
    min_match_probability: float = MIN_MATCH_PROBABILITY
    validation_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"


@dataclass
class CatalogueTrainResult:
    """What fine-tuning from the catalogue produced, beside the model it started from."""

    card: ModelCard
    examples: TrainingSet
    current: ReidMetrics
    new: ReidMetrics
    validation_individuals: int
    seconds: float
    fusion_carried: bool
    # New minus current mAP on the held-out individuals, and its 95% interval (map_gain).
    gain: tuple[float, float, float] = (float("nan"),) * 3

    @property
    def better(self) -> bool:
        """The new model ranks the held-out individuals' photos better than the current one, by
        more than chance among so few individuals: a model reindexes the whole catalogue, so
        a gain that two or three animals' photos could give by luck is no reason to use it."""
        return bool(self.gain[1] > 0)


def map_gain(current: QueryScores, new: QueryScores, individuals: list[str]) -> tuple[float, float, float]:
    """New minus current mean average precision on the same queries (`individuals`: each photo's),
    with a 95% interval from resampling whole individuals (with three or fewer, its low end is the
    worst individual's gain); NaN when no photo has a match to find."""
    if not len(current.rows):
        return (float("nan"),) * 3
    animals = np.asarray(individuals)[current.rows]
    return paired_bootstrap(new.average_precision, current.average_precision, animals)


def _starting_card(config: CatalogueTrainConfig) -> tuple[ModelCard, str]:
    card = read_card(config.model_path)
    backbone = str(card.trained_on.get("backbone", ""))
    if backbone not in BACKBONES:
        raise FinprintError(
            f"{config.model_path}: its card names backbone {backbone or 'none'!r}, which finprint cannot "
            f"fine-tune (it can: {', '.join(BACKBONES)}). Train from labelled folders: finprint train DATA."
        )
    return card, backbone


def _split(examples: TrainingSet, config: CatalogueTrainConfig) -> tuple[list[int], list[int], set[str]]:
    """Training and validation photo indices, whole individuals held out: some of those seen on
    two or more encounters (one encounter's photos are near repeats, never each other's test),
    at least two, the rest left for training."""
    encounters: dict[str, set[str]] = {}
    for photo in examples.photos:
        encounters.setdefault(photo.individual, set()).add(photo.encounter)
    resighted = sorted(i for i in examples.individuals_with_pairs() if len(encounters[i]) >= 2)
    if len(resighted) < MIN_VALIDATION_INDIVIDUALS:
        raise TrainingDataError(
            f"{config.catalogue}: only {len(resighted)} individual(s) have trusted photos from two or more "
            f"encounters; comparing the new model with the current one needs {MIN_VALIDATION_INDIVIDUALS}. "
            "Confirm or merge re-sightings in `finprint review` first."
        )
    order = np.random.default_rng(config.seed).permutation(len(resighted))
    count = max(MIN_VALIDATION_INDIVIDUALS, round(len(resighted) * config.validation_fraction))
    held_out = {resighted[i] for i in order[:count]}
    validation = [i for i, p in enumerate(examples.photos) if p.individual in held_out]
    training = [i for i, p in enumerate(examples.photos) if p.individual not in held_out]
    return training, validation, held_out


def matched_threshold(
    current_distances: np.ndarray, new_distances: np.ndarray, current_threshold: float
) -> float:
    """The new model's threshold that lets through the share of different-individual pairs the
    current one does: the same rank in the sorted distances. Fine-tuning may stretch or shrink
    every distance, so the old number means nothing to the new model; the share of look-alikes
    let through is what a person relied on. The pairs are catalogue individuals, some of them one
    fish not yet merged: the new model pulls those together, so the rule errs towards strict."""
    current_sorted = np.sort(current_distances)
    new_sorted = np.sort(new_distances)
    below = int(np.searchsorted(current_sorted, current_threshold, side="right"))
    if below >= MIN_TAIL_PAIRS:
        return float(new_sorted[below - 1])
    # Too few pairs under the threshold to read a rank: scale by the tail both models can show.
    tail = min(MIN_TAIL_PAIRS, len(new_sorted)) - 1
    if tail < 0 or current_sorted[tail] <= 0:
        return current_threshold
    return float(current_threshold * new_sorted[tail] / current_sorted[tail])


def _different_pair_distances(vectors: np.ndarray, keys: list[str], seed: int) -> np.ndarray:
    """Distances of the pairs of photos of different individuals among (at most
    MAX_THRESHOLD_PHOTOS of) the photos, within each flank and crop (the pairs a catalogue compares)."""
    rows = np.arange(len(keys))
    if len(rows) > MAX_THRESHOLD_PHOTOS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_THRESHOLD_PHOTOS, replace=False))
    individual = np.asarray([keys[i].split("|", 1)[0] for i in rows])
    partition = np.asarray([keys[i].split("|", 1)[1] for i in rows])
    distances = pairwise_distances(vectors[rows].astype(np.float64))
    upper = np.triu(np.ones_like(distances, dtype=bool), 1)
    wanted = upper & (individual[:, None] != individual[None, :]) & (partition[:, None] == partition[None, :])
    found: np.ndarray = distances[wanted]
    return found


def _nearest_pair_by_label(vectors: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """n_labels x n_labels: the distance between the nearest photos of each two labels (inf where
    a label has no photo; the diagonal means nothing)."""
    order = np.argsort(labels, kind="stable")
    gallery, sorted_labels = vectors[order].astype(np.float64), labels[order]
    present, starts = np.unique(sorted_labels, return_index=True)
    norms = (gallery**2).sum(axis=1)
    ends = [*starts[1:], len(gallery)]
    nearest = np.full((n_labels, n_labels), np.inf)
    for label, first, last in zip(present, starts, ends, strict=True):
        nearest[label, present] = nearest_by_individual(gallery[first:last], gallery, norms, starts)
    return nearest


def _resighting_distance(vectors: np.ndarray, encounters: np.ndarray) -> float | None:
    """The distance between an entry's nearest photos from two different encounters (None: one
    encounter only)."""
    different = encounters[:, None] != encounters[None, :]
    if not different.any():
        return None
    return float(pairwise_distances(vectors.astype(np.float64))[different].min())


def possibly_one_animal(
    vectors: np.ndarray,
    labels: list[int],
    encounters: list[str],
    said_different: list[tuple[int, int]],
    n_labels: int,
) -> tuple[np.ndarray, float]:
    """Pairs of labels (catalogue entries, by the current model's `vectors` of their photos) that
    may show one animal, and the distance that decided it.

    A catalogue is incomplete: a fish the model did not recognise again is two entries until
    someone merges them, and batch-hard mining picks exactly those (the nearest "other" fish) as
    the negatives it pushes hardest, teaching the network to split that fish again. Two entries
    whose nearest photos are nearer than UNSURE_RESIGHTING_QUANTILE of the archive's known
    re-sightings are therefore neither pushed apart nor pulled together; two labels a person said
    differ (`said_different`, pairs of labels) always are each other's negative. Returns (mask,
    distance); with fewer than two known re-sightings nothing is masked (distance 0)."""
    label_array, encounter_array = np.asarray(labels), np.asarray(encounters)
    by_label = (np.flatnonzero(label_array == label) for label in np.unique(label_array))
    found = (_resighting_distance(vectors[rows], encounter_array[rows]) for rows in by_label)
    resighting = [distance for distance in found if distance is not None]
    unsure = np.zeros((n_labels, n_labels), dtype=bool)
    if len(resighting) < 2:
        return unsure, 0.0
    cutoff = float(np.quantile(resighting, UNSURE_RESIGHTING_QUANTILE))
    unsure = _nearest_pair_by_label(vectors, label_array, n_labels) < cutoff
    np.fill_diagonal(unsure, False)
    for a, b in said_different:
        unsure[a, b] = unsure[b, a] = False
    return unsure, cutoff


def _unsure_entries(
    vectors: np.ndarray, data: _FineTuningSet, catalogue_rows: list[int], console: Console
) -> tuple[np.ndarray, dict[str, Any]]:
    """possibly_one_animal over the catalogue's training photos (`vectors`, the current model's),
    said on the console, and the card's record of it."""
    unsure, distance = possibly_one_animal(
        vectors,
        [data.labels[i] for i in catalogue_rows],
        [data.cache.photos[i].encounter for i in catalogue_rows],
        [(data.labels[a], data.labels[b]) for a, b in data.pairs],
        len(set(data.labels)),
    )
    pairs = int(np.triu(unsure, 1).sum())
    if pairs:
        console.print(
            f"{pairs} pair(s) of entries are nearer than {distance:.3f}, as near as most known "
            "re-sightings: possibly one animal not yet merged, so not taught as different."
        )
    rule = (
        f"entries nearer than the {UNSURE_RESIGHTING_QUANTILE:.0%} quantile of known re-sightings "
        "are not taught as different"
    )
    return unsure, {"rule": rule, "distance": round(distance, 4), "entry_pairs": pairs}


def _carry_fusion(config: CatalogueTrainConfig, card: ModelCard, new_version: str) -> bool:
    """The keypoint fusion goes with the new model when it does not weigh the distance (its
    inliers mean the same under any model); a fusion that does needs refitting."""
    path = fusion_module.sidecar_path(config.model_path)
    if not path.is_file():
        return False
    fusion = fusion_module.Fusion.load(path)
    if fusion.model_version != card.model_version or fusion.distance_weight != 0.0:
        return False
    fitted = {**fusion.fitted_on, "carried_from_model": card.model_version}
    replace(fusion, model_version=new_version, fitted_on=fitted).save(
        fusion_module.sidecar_path(config.out_path)
    )
    return True


def train_from_catalogue(
    config: CatalogueTrainConfig, console: Console | None = None
) -> CatalogueTrainResult:
    """Fine-tune the catalogue's model on its trusted individuals and people's hard negatives,
    compare it with the current model on individuals it held out, and export it with its card."""
    console = console or Console()
    started = time.perf_counter()
    card, backbone = _starting_card(config)
    with Store.open(config.catalogue, read_only=True) as store:
        versions = store.catalogue_model_versions()
        if versions and card.model_version not in versions:
            raise FinprintError(
                f"{config.catalogue} was indexed with model {', '.join(versions)}, not {card.model_version} "
                f"({config.model_path}). Give the catalogue's model with --model."
            )
        examples = training_set(store, config.min_match_probability)
    if examples.missing:
        console.print(
            f"[yellow]{len(examples.missing)} photo(s) have no file where the catalogue last saw them "
            f"(e.g. photo {examples.missing[0][:12]}); left out. Run `finprint index` on their folders "
            "to find moved files.[/yellow]"
        )
    training, validation, held_out = _split(examples, config)
    decisions = ", ".join(f"{n} {action}" for action, n in sorted(examples.decisions.items())) or "none"
    console.print(
        f"From {config.catalogue.name}: {len(examples.photos)} photos of {len(examples.individuals)} "
        f"individuals (decisions: {decisions}; {examples.automatic_matches} sure automatic matches; "
        f"{len(examples.negative_pairs)} pairs people said differ; {examples.individuals_skipped} "
        f"individuals with too few trusted photos skipped). Validating on {len(held_out)} held out."
    )
    seed_everything(config.seed)
    device = pick_device(config.device)
    spec = card.input
    replay = read_sources(config.data_dirs) if config.data_dirs else []
    train_photos = [examples.photos[i] for i in training] + [
        replace(p, individual=f"{REPLAY}/{p.individual}") for p in replay
    ]
    fine_tuning = _FineTuningSet.of(examples, PhotoCache(train_photos, spec, console), card.sides)
    train_cache, groups, keys = fine_tuning.cache, fine_tuning.groups, fine_tuning.keys
    validation_cache = PhotoCache([examples.photos[i] for i in validation], spec, console)

    model = build_backbone(backbone, card.embedding.dim, spec.channels, _pooling(card), _parts(card))
    load_exported_weights(model, config.model_path, card, backbone)
    if config.freeze_blocks > 0 and hasattr(model, "frozen_prefix"):
        for parameter in model.frozen_prefix(config.freeze_blocks).parameters():  # type: ignore[operator]
            parameter.requires_grad_(False)
    model = model.to(device)
    validation_tensors = plain_tensors(validation_cache.images, spec)
    validation_keys = [p.class_key(card.sides) for p in validation_cache.photos]
    validation_encounters = [p.encounter for p in validation_cache.photos]
    catalogue_rows = [i for i, group in enumerate(groups) if group != REPLAY]
    threshold_tensors = torch.cat(
        [plain_tensors([train_cache.images[i] for i in catalogue_rows], spec), validation_tensors]
    )
    threshold_keys = [keys[i] for i in catalogue_rows] + validation_keys
    current_vectors = embed_all(model, threshold_tensors)
    current, current_queries = reid_metrics_by_query(
        current_vectors[len(catalogue_rows) :], validation_keys, validation_encounters
    )
    unsure, unsure_entry = _unsure_entries(
        current_vectors[: len(catalogue_rows)], fine_tuning, catalogue_rows, console
    )
    _fine_tune(model, config, fine_tuning, card, console, unsure=unsure)

    new_vectors = embed_all(model, threshold_tensors)
    new, new_queries = reid_metrics_by_query(
        new_vectors[len(catalogue_rows) :], validation_keys, validation_encounters
    )
    threshold = matched_threshold(
        _different_pair_distances(current_vectors, threshold_keys, config.seed),
        _different_pair_distances(new_vectors, threshold_keys, config.seed),
        card.threshold,
    )
    extra: dict[str, Any] = {
        "threshold_rule": {
            "rule": "the current model's share of different-individual pairs under its threshold",
            "current_model": card.model_version,
            "current_threshold": card.threshold,
        }
    }
    calibration = calibrate_probability(new_vectors[len(catalogue_rows) :], validation_keys)
    extra["calibration"] = calibration.to_card()
    gain = map_gain(current_queries, new_queries, [p.individual for p in validation_cache.photos])
    validated = {
        "individuals": len(held_out),
        "current": card_metrics(current),
        "new": card_metrics(new),
        "map_gain_interval_95": [round(gain[1], 4), round(gain[2], 4)],
    }
    new_card = trained_card(
        model,
        spec=spec,
        embedding=card.embedding,
        sides=card.sides,
        threshold=threshold,
        learnt_from=TrainedOn(
            config.catalogue.name,
            train_cache.photos,
            "catalogue",
            backbone,
            config.epochs,
            config.seed,
            _learnt_from_catalogue(config, card, examples, validated) | {"possibly_one_animal": unsure_entry},
        ),
        extra=extra,
    )
    version = new_card.model_version
    export_onnx(model, new_card, config.out_path)
    carried = _carry_fusion(config, card, version)
    return CatalogueTrainResult(
        new_card, examples, current, new, len(held_out), time.perf_counter() - started, carried, gain
    )


def _learnt_from_catalogue(
    config: CatalogueTrainConfig, card: ModelCard, examples: TrainingSet, validation: dict[str, Any]
) -> dict[str, Any]:
    """What a card fine-tuned from a catalogue says beyond every trained card: the catalogue, its
    decisions, the model it started from, and how it compared with that model on the held-out
    individuals."""
    return {
        "catalogue": config.catalogue.name,
        "date": date.today().isoformat(),
        "decisions": examples.decisions,
        "decisions_undone_not_used": examples.decisions_undone,
        "automatic_matches": examples.automatic_matches,
        "min_match_probability": config.min_match_probability,
        "negative_pairs": len(examples.negative_pairs),
        "replayed": [d.name for d in config.data_dirs],
        "started_from": {"model_version": card.model_version, "dataset": card.trained_on.get("dataset")},
        # The network is the one it started from: the next fine-tuning rebuilds it by this.
        "pooling": _pooling(card),
        **({"parts": _parts(card)} if _parts(card) else {}),
        "validation": validation,
    }


def _parts(card: ModelCard) -> int:
    """How many strips the card's network embeds beside the whole photo (0 on older cards)."""
    return int(card.trained_on.get("parts", 0))


def _pooling(card: ModelCard) -> str:
    """How the card's network pools (cards from before pooling was a choice average)."""
    return str(card.trained_on.get("pooling", "avg"))


@dataclass(frozen=True)
class _FineTuningSet:
    """The photos fine-tuning sees, with each one's class, its group (replayed or the
    catalogue's) and the pairs people said differ, as positions in `cache`."""

    cache: PhotoCache
    keys: list[str]
    labels: list[int]
    groups: list[str]
    pairs: list[tuple[int, int]]

    @classmethod
    def of(cls, examples: TrainingSet, cache: PhotoCache, sides: Sides) -> _FineTuningSet:
        # Replayed photos are batched apart from the catalogue's and never set its threshold.
        groups = [REPLAY if p.individual.startswith(f"{REPLAY}/") else "" for p in cache.photos]
        keys = [p.class_key(sides) for p in cache.photos]
        class_index = {key: i for i, key in enumerate(sorted(set(keys)))}
        position = {photo.path: i for i, photo in enumerate(cache.photos)}
        pairs = [
            (position[examples.photos[a].path], position[examples.photos[b].path])
            for a, b in examples.negative_pairs
            if examples.photos[a].path in position and examples.photos[b].path in position
        ]
        return cls(cache, keys, [class_index[key] for key in keys], groups, pairs)


def _fine_tune(
    model: nn.Module,
    config: CatalogueTrainConfig,
    data: _FineTuningSet,
    card: ModelCard,
    console: Console,
    *,
    unsure: np.ndarray,
) -> None:
    """Batch-hard triplets over P x K batches of the trusted individuals, plus batches built
    around every pair people said differ, each epoch, so that the loss sees each such pair;
    label pairs `unsure` marks (possibly_one_animal) are never each other's negative."""
    cache, labels, pairs, groups = data.cache, data.labels, data.pairs, data.groups
    spec, sides, threshold = card.input, card.sides, card.threshold
    sampler = PKSampler(
        labels, config.individuals_per_batch, config.photos_per_individual, config.seed, groups=groups
    )
    rng = np.random.default_rng(config.seed)
    pairs_per_batch = max(1, config.individuals_per_batch // 2)
    random_batches = max(len(sampler), MIN_BATCHES_PER_EPOCH)
    steps = config.epochs * (random_batches + -(-len(pairs) // pairs_per_batch))
    device = next(model.parameters()).device
    optimisation = Optimisation.adamw(
        trunk_and_head_groups(model, config.learning_rate, config.trunk_lr_scale),
        weight_decay=5e-4,
        # Fewer than 4 and OneCycleLR's warm-up would end on its first step.
        total_steps=max(steps, 4),
        device=device,
    )
    augment = Augmenter(spec, rng, horizontal_flip=sides == Sides.MERGED)
    unsure_labels = torch.from_numpy(unsure).to(device)
    try:
        with training_progress(console, "fine-tuning") as progress:
            task = progress.add_task("fine-tune", total=steps, loss=0.0)
            for _ in range(config.epochs):
                model.train()
                freeze_batchnorm(model)
                batches = [b for _ in range(-(-random_batches // len(sampler))) for b in sampler.batches()]
                batches = batches[:random_batches] + negative_pair_batches(
                    pairs, labels, config.photos_per_individual, pairs_per_batch, rng
                )
                for number in rng.permutation(len(batches)):
                    batch = batches[int(number)]
                    images = torch.from_numpy(np.stack([augment(cache.images[i]) for i in batch])).to(device)
                    batch_labels = torch.tensor([labels[i] for i in batch], device=device)
                    with optimisation.autocast():
                        # Distances and margins in float32: half precision blurs small margins.
                        embeddings = model(images).float()
                    loss = batch_hard_triplet_loss(
                        embeddings, batch_labels, config.triplet_margin, unsure_labels
                    ) + threshold_pair_loss(
                        embeddings, batch_labels, threshold, config.threshold_margin, unsure_labels
                    )
                    progress.update(task, advance=1, loss=optimisation.step(loss))
    except KeyboardInterrupt:
        raise FinprintError(f"training interrupted; nothing was written to {config.out_path}.") from None
    model.eval()
