"""The training loop: P x K batch-hard triplets (finprint) or contrastive pairs (seed recipe)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from catalog.calibration import Calibration, fit_isotonic
from catalog.errors import FinprintError, TrainingDataError
from catalog.modelcard import EmbeddingSpec, InputSpec, ModelCard
from catalog.offline.labels import LabelledPhoto, read_sources, source_of, split_by_individual, split_photos
from catalog.offline.metrics import (
    ReidMetrics,
    SetOperatingPoint,
    pair_distances_by_group,
    reid_metrics,
    threshold_safe_per_set,
)
from catalog.synthetic import SYNTHETIC_MARKER
from catalog.train.data import Augmenter, PhotoCache, PKSampler, plain_tensors
from catalog.train.export import TrainedOn, export_onnx, trained_card
from catalog.train.losses import CosFaceHead, batch_hard_triplet_loss, contrastive_loss
from catalog.train.nets import SeedSiamese, build_backbone
from catalog.train.steps import Optimisation, training_progress
from catalog.vocabulary import Sides

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128, i.e. on [0, 1] pixels:
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
# Fewer validation animals than this and a false-match rate of 1e-4 is estimated from a handful
# of look-alike pairs: the card's threshold is then a guess.
MIN_VALIDATION_INDIVIDUALS = 10
# A final fit's checkpoint, beside the calibration training's last.pt: --resume goes on with either.
FINAL_FIT_CHECKPOINT = "final.pt"
# (height, width) a backbone is trained and run at unless told otherwise. Photos are stretched to
# it (the format-1 card's rule); most subjects (fish, flanks) are about twice as wide as tall.
BACKBONE_INPUT_SIZE = {"small": (64, 128), "mobilenetv2": (112, 224), "efficientnet-lite0": (112, 224)}


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe; every field has a default that works on a CPU laptop."""

    data_dirs: tuple[Path, ...]
    out_path: Path
    recipe: str = "finprint"  # finprint | seed
    backbone: str = "small"  # small | mobilenetv2 | efficientnet-lite0 | resnet18
    # ImageNet weights for mobilenetv2 and efficientnet-lite0 (catalog.train.pretrained).
    pretrained: bool = True
    # Trunk stages kept at their ImageNet weights (BatchNorm statistics included): the
    # high-resolution early stages hold generic edges and cost most of the backward pass on a CPU.
    freeze_blocks: int = 4
    # The trunk learns at this fraction of the head's rate, so that a few epochs on a few hundred
    # animals adjust the ImageNet features instead of overwriting them.
    trunk_lr_scale: float = 0.1
    sides: Sides = Sides.SPLIT
    crop: str | None = None
    epochs: int = 30
    individuals_per_batch: int = 16
    photos_per_individual: int = 4
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    triplet_margin: float = 0.3
    # "triplet" (batch-hard), "cosface+triplet" or "softmax+triplet" (an identity loss beside the
    # triplet: a cosine softmax with label smoothing, no margin). On synthetic fish with few photos
    # per identity the margin softmax learned slower (validation rank-1 0.32 vs 0.52 after 8 epochs).
    loss: str = "triplet"
    # The identity loss's label smoothing (softmax+triplet): an animal's photos are few, and a
    # softmax that must be certain of each learns them by heart.
    label_smoothing: float = 0.1
    # How the trunk's feature map becomes one vector: "avg" or "gem" (generalised mean, ImageNet
    # backbones only).
    pooling: str = "avg"
    # Strips across the photo's width, each with its own share of the embedding beside the whole
    # photo's (0: the whole photo only; ImageNet backbones only).
    parts: int = 0
    # The share of training photos with a random rectangle of noise (0: none).
    random_erasing: float = 0.0
    # None: the backbone's own size (BACKBONE_INPUT_SIZE). For the small net 64x128 learned faster
    # and better than 96x192 on synthetic fish (rank-1 0.52 vs 0.34).
    input_height: int | None = None
    input_width: int | None = None
    embedding_dim: int = 128
    validation_fraction: float = 0.2
    # The card's threshold: the largest distance at which at most this share of the
    # validation's different-fish pairs would be called the same fish. A new photo is compared
    # with every catalogued photo of its flank and crop, so the chance of some false match grows
    # with the catalogue: the per-pair rate must sit far below 1/(photos per partition). 1e-4 is
    # as low as a validation set of about a million different-fish pairs still estimates (from
    # ~100 pairs); on the default model 1e-3 let 3 wrong merges into the 24-fish demo, 1e-4 none.
    false_match_rate: float = 1e-4
    # A set whose own safe threshold matches fewer than this share of its re-sightings does not
    # set the card's threshold (catalog.offline.metrics.threshold_safe_per_set): a rule that recognises
    # fewer than one re-sighting in ten serves nobody, so that set is left to verification.
    min_true_match_rate: float = 0.1
    # ...but the card's threshold never matches more than this share of such a set's different-
    # animal pairs: the candidate 160x160 model left zebra (6 animals) to verification and its
    # threshold then matched 39% of zebra's different pairs (pairwise precision 0.22 in
    # bench-ceiling). The priority is a wrong merge over a missed match, and the catalogue cannot
    # tell which kind of animal it holds; 1% is a hundred times the served sets' rate.
    unserved_false_match_rate: float = 1e-2
    seed: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False
    init_weights: Path | None = None
    # A WildlifeDatasets-style table instead of (or besides) folders, and its paths' root.
    metadata: Path | None = None
    metadata_root: Path | None = None
    # How validation photos are chosen: disjoint | open | time (see catalog.offline.labels.split_photos).
    split: str = "disjoint"
    split_date: date | None = None
    # k-fold by individual (disjoint split only): hold out fold `fold` of `folds`.
    folds: int = 0
    fold: int = 0
    # "auto": CUDA when torch sees a GPU (with mixed precision), else CPU.
    device: str = "auto"
    # Weight-space ensemble of the fine-tuned trunk with its ImageNet start (WiSE-FT, Wortsman et
    # al. 2022): the trunk's weights end at this share of the fine-tuned ones, the rest ImageNet's,
    # to keep what ImageNet gave for animals the training never saw. 1.0: the fine-tuned trunk.
    weight_ensemble: float = 1.0
    # Linear probing, then fine-tuning (LP-FT, Kumar et al. 2022): for this many first epochs only
    # the head learns, on the ImageNet trunk as it is, so that a random head's gradients never
    # reach (and distort) the pretrained features. 0: every trainable part learns from the start.
    head_epochs: int = 0
    # After the threshold is set on the validation animals, train once more from the same start on
    # every animal, validation ones included, and ship that network with the threshold: with a few
    # dozen individuals the fifth held out is a fifth of what the network could learn from. About
    # twice the training time; the card's validation figures are the calibration network's.
    final_fit: bool = False


def _check_choices(config: TrainConfig) -> None:
    """Every named choice must be one finprint knows: an unknown recipe used to train as finprint."""
    from catalog.vocabulary import Backbone, Loss, Pooling, PretrainedBackbone, Recipe, Split

    for field_name, kind in (
        ("recipe", Recipe), ("backbone", Backbone), ("sides", Sides), ("split", Split), ("loss", Loss),
        ("pooling", Pooling),
    ):  # fmt: skip
        value = getattr(config, field_name)
        if value not in {member.value for member in kind}:
            choices = ", ".join(member.value for member in kind)
            raise FinprintError(f"unknown {field_name} {value!r}: choose one of {choices}")
    # Pooling and parts are the EmbeddingHead's, which only the ImageNet backbones have.
    has_head = config.recipe != "seed" and config.backbone in {b.value for b in PretrainedBackbone}
    if config.pooling != "avg" and not has_head:
        raise FinprintError(
            f"--pooling {config.pooling} needs the mobilenetv2 or efficientnet-lite0 backbone "
            "(the others pool their own way)."
        )
    if config.parts and not has_head:
        raise FinprintError("--parts needs the mobilenetv2 or efficientnet-lite0 backbone.")
    if config.parts < 0 or config.embedding_dim < 2 * config.parts:
        raise FinprintError(
            f"--parts {config.parts}: give 0 or more strips, and an --embedding-dim of at least "
            f"{2 * config.parts} (half of it is the whole photo's, the rest the strips')."
        )
    if not 0.0 <= config.random_erasing <= 1.0:
        raise FinprintError(f"--random-erasing is a share of photos, 0 to 1, not {config.random_erasing}")
    # Checked before training, not after it: the ensemble needs the ImageNet start it blends with.
    if config.weight_ensemble < 1.0 and (not _uses_pretrained(config) or config.init_weights is not None):
        raise FinprintError(
            "--weight-ensemble needs a backbone that starts from ImageNet weights "
            "(mobilenetv2 or efficientnet-lite0, without --no-pretrained or --init-weights)."
        )
    if config.final_fit and (config.folds > 1 or config.validation_fraction <= 0 or config.recipe == "seed"):
        raise FinprintError(
            "--final-fit trains again on every animal after the validation animals set the threshold: "
            "it needs validation animals (a --validation-fraction above 0), a finprint recipe, and no "
            "--folds (which holds a fold out to be scored, not trained on)."
        )
    if config.head_epochs and not (_uses_pretrained(config) and 0 < config.head_epochs < config.epochs):
        raise FinprintError(
            f"--head-epochs {config.head_epochs} needs a backbone that starts from ImageNet weights and "
            f"fewer head epochs than --epochs ({config.epochs}): the trunk must learn in the others."
        )


@dataclass
class TrainResult:
    """What training produced."""

    card: ModelCard
    validation: ReidMetrics | None
    parity_difference: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    skipped_photos: int = 0
    # The shipped network was trained again on every animal; `validation` and `history` are the
    # calibration network's, which never saw the validation animals.
    final_fit: bool = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _input_spec(config: TrainConfig) -> InputSpec:
    if config.recipe == "seed":
        # The seed study: 100x100 greyscale, pixels in [0, 1].
        return InputSpec(100, 100, 1, (0.0,), (1.0,))
    default_height, default_width = BACKBONE_INPUT_SIZE.get(config.backbone, (224, 224))
    height = config.input_height or default_height
    width = config.input_width or default_width
    if config.backbone == "efficientnet-lite0":
        return InputSpec(height, width, 3, LITE_MEAN, LITE_STD)
    return InputSpec(height, width, 3, IMAGENET_MEAN, IMAGENET_STD)


def _uses_pretrained(config: TrainConfig) -> bool:
    from catalog.train.pretrained import SOURCES

    return config.recipe != "seed" and config.pretrained and config.backbone in SOURCES


def _start_from_imagenet(model: nn.Module, config: TrainConfig) -> dict[str, str]:
    """Load the backbone's checked ImageNet weights and freeze its first stages; returns the card's
    record of the starting weights."""
    from catalog.train import pretrained

    path = pretrained.fetch(config.backbone)
    pretrained.load_backbone_weights(model, config.backbone, path)
    _freeze_prefix(model, config)
    return {**pretrained.source_for(config.backbone).card_entry(), "frozen_blocks": str(config.freeze_blocks)}


def _ensemble_with_imagenet(model: nn.Module, config: TrainConfig) -> None:
    """The trunk's weights (BatchNorm statistics included) become weight_ensemble x fine-tuned +
    (1 - weight_ensemble) x ImageNet's; the head stays as trained."""
    start = build_backbone(config.backbone, config.embedding_dim, 3, config.pooling, config.parts)
    _start_from_imagenet(start, config)
    imagenet = start.trunk.state_dict()  # type: ignore[union-attr]
    trunk: nn.Module = model.trunk  # type: ignore[assignment]
    alpha = config.weight_ensemble
    with torch.no_grad():
        for name, tensor in trunk.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(alpha * tensor + (1 - alpha) * imagenet[name].to(tensor.device))


def _identity_head(config: TrainConfig, n_classes: int) -> CosFaceHead | None:
    """The classifier an identity loss trains beside the triplet (None: the triplet alone)."""
    if config.loss == "cosface+triplet":
        return CosFaceHead(config.embedding_dim, n_classes)
    if config.loss == "softmax+triplet":
        return CosFaceHead(
            config.embedding_dim, n_classes, margin=0.0, label_smoothing=config.label_smoothing
        )
    return None


def _freeze_prefix(model: nn.Module, config: TrainConfig) -> None:
    """The trunk's first `freeze_blocks` stages never learn."""
    if config.freeze_blocks > 0:
        model.frozen_prefix(config.freeze_blocks).requires_grad_(False)  # type: ignore[operator]


def _freeze_statistics(model: nn.Module, config: TrainConfig) -> None:
    """Frozen stages keep ImageNet's BatchNorm statistics: model.train() would update them."""
    if _uses_pretrained(config) and config.freeze_blocks > 0:
        model.frozen_prefix(config.freeze_blocks).eval()  # type: ignore[operator]


def trunk_and_head_groups(
    model: nn.Module, learning_rate: float, trunk_lr_scale: float
) -> list[dict[str, Any]]:
    """The trainable parameters as optimizer groups: the trunk's at `trunk_lr_scale` of the
    head's rate, so that a small set adjusts pretrained features instead of overwriting them."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    trunk = [p for name, p in trainable if name.startswith("trunk.")]
    rest = [p for name, p in trainable if not name.startswith("trunk.")]
    groups = [
        {"params": trunk, "lr": learning_rate * trunk_lr_scale},
        {"params": rest, "lr": learning_rate},
    ]
    return [group for group in groups if group["params"]]


def _parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The trunk at `trunk_lr_scale` of the head's rate when it starts from ImageNet weights."""
    if not _uses_pretrained(config):
        params = [p for p in model.parameters() if p.requires_grad]
        return [{"params": params, "lr": config.learning_rate}]
    return trunk_and_head_groups(model, config.learning_rate, config.trunk_lr_scale)


def embed_all(model: nn.Module, tensors: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        parts = [
            model(tensors[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(tensors), batch_size)
        ]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


def pick_device(wanted: str) -> torch.device:
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FinprintError(f"device {wanted!r} asked for, but torch sees no CUDA GPU. Use --device cpu.")
    return device


def _split_for_training(
    config: TrainConfig, console: Console, photos: list[LabelledPhoto] | None = None
) -> tuple[list[LabelledPhoto], list[LabelledPhoto]]:
    """The labelled photos, cut into training and validation individuals (or photos), as asked."""
    if photos is None:
        photos = read_sources(config.data_dirs, config.metadata, config.metadata_root, config.crop)
    if not photos:
        raise TrainingDataError("no labelled photos: give DATA folders or --metadata TABLE.csv.")
    if config.folds > 1:
        train_photos, validation_photos = split_by_individual(
            photos, config.validation_fraction, config.seed, config.fold, config.folds
        )
    else:
        train_photos, validation_photos = split_photos(
            photos, config.split, config.validation_fraction, config.seed, config.split_date
        )
    if len({p.individual for p in train_photos}) < 2:
        raise TrainingDataError("need at least 2 individuals to train on after the validation split.")
    validation_individuals = _count_individuals(validation_photos)
    console.print(
        f"Training on {len(train_photos)} photos of {_count_individuals(train_photos)} individuals; "
        f"validating on {len(validation_photos)} photos of {validation_individuals} others."
    )
    if 0 < validation_individuals < MIN_VALIDATION_INDIVIDUALS:
        console.print(
            f"[yellow]Only {validation_individuals} validation individual(s): the threshold and the "
            f"figures below rest on too few animals to trust (about {MIN_VALIDATION_INDIVIDUALS} or more "
            "are needed). Label more individuals, or check the split.[/yellow]"
        )
    return train_photos, validation_photos


@dataclass
class _Validation:
    """The validation photos as the network sees them, and how each epoch and the end score them."""

    photos: list[LabelledPhoto]
    tensors: torch.Tensor
    labels: list[str]
    encounters: list[str]

    @classmethod
    def of(cls, cache: PhotoCache, spec: InputSpec, sides: Sides) -> _Validation:
        return cls(
            cache.photos,
            plain_tensors(cache.images, spec),
            [p.class_key(sides) for p in cache.photos],
            [p.encounter for p in cache.photos],
        )

    @classmethod
    def none(cls) -> _Validation:
        """No validation photos: a final fit's epochs learn from every animal, so none is unseen."""
        return cls([], torch.empty(0), [], [])

    def usable(self) -> bool:
        return len(self.tensors) > 1

    def epoch_record(self, model: nn.Module, record: dict[str, float]) -> str:
        """Add this epoch's validation rank-1, pooled and per source set, to `record`; returns the
        per-set figures as text for the log."""
        vectors = embed_all(model, self.tensors)
        record["validation_rank1"] = reid_metrics(vectors, self.labels, self.encounters).rank1
        # Pooled figures follow the set with the most identities (drawn fish, say): each set's own
        # rank-1 shows whether the real ones improve or drift.
        per_set_text = ""
        for name, scores in _validation_per_source(vectors, self.photos, self.labels).items():
            record[f"validation_rank1/{name}"] = scores.rank1
            per_set_text += f" {name} {scores.rank1:.3f}"
        return per_set_text


@dataclass
class _Calibrated:
    """What the end of training decides from the validation: the card's threshold and scores."""

    threshold: float
    validation: ReidMetrics | None = None
    per_source: dict[str, ReidMetrics] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _calibrate(
    model: nn.Module, validation: _Validation, config: TrainConfig, console: Console
) -> _Calibrated:
    """The card's threshold (each set's own false-match rate), its P(same) calibration, and the
    validation scores, printed as they are decided."""
    if not validation.usable():
        console.print("[yellow]No validation individuals: the threshold falls back to 1.0, uncalibrated.")
        return _Calibrated(1.0)
    vectors = embed_all(model, validation.tensors)
    scores = reid_metrics(vectors, validation.labels, validation.encounters)
    threshold, operating = calibrate_threshold_per_set(vectors, validation.photos, validation.labels, config)
    extra: dict[str, Any] = {"threshold_rule": threshold_rule_card(operating, config)}
    for point in operating:
        console.print(
            f"Threshold {threshold:.4f} on {point.name or 'validation'}: false-match rate "
            f"{point.false_match_rate:.1e}, re-sightings matched {point.true_match_rate:.3f}"
            + (
                ""
                if point.decides
                else f" (its own safe threshold {point.own_threshold:.4f} "
                f"matches only {point.own_true_match_rate:.3f}: left to verification, its false-match "
                f"rate held under {config.unserved_false_match_rate:.0%})"
            )
        )
    extra["calibration"] = calibrate_probability(vectors, validation.labels).to_card()
    per_source = _validation_per_source(vectors, validation.photos, validation.labels)
    for name, metrics in per_source.items():
        console.print(
            f"Validation on {name}: {metrics.n_individuals} identities, rank-1 {metrics.rank1:.3f}"
            f"{_interval_text(metrics.rank1_interval)}, mAP {metrics.mean_average_precision:.3f}"
            f"{_interval_text(metrics.map_interval)}, ROC AUC {metrics.roc_auc:.3f}"
        )
    return _Calibrated(threshold, scores, per_source, extra)


@dataclass
class _Recipe:
    """One training run's moving parts: the network (and CosFace head), its optimiser and
    schedule, the P x K sampler, augmentation, the RNG, and the checkpoint that holds them."""

    config: TrainConfig
    model: nn.Module
    head: CosFaceHead | None
    optimisation: Optimisation
    sampler: PKSampler
    rng: np.random.Generator
    augment: Augmenter
    labels: list[int]
    device: torch.device
    checkpoint: Path
    # The card's record of the ImageNet weights the trunk started from (empty: none).
    starting_weights: dict[str, str]
    # Epochs finished (by a run this one resumes) and their scores.
    epochs_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        cache: PhotoCache,
        spec: InputSpec,
        device: torch.device,
        checkpoint_name: str = "last.pt",
    ) -> _Recipe:
        class_names = sorted({p.class_key(config.sides) for p in cache.photos})
        class_index = {name: i for i, name in enumerate(class_names)}
        labels = [class_index[p.class_key(config.sides)] for p in cache.photos]
        head: CosFaceHead | None = None
        starting_weights: dict[str, str] = {}
        sampler = PKSampler(
            labels,
            config.individuals_per_batch,
            config.photos_per_individual,
            config.seed,
            groups=[source_of(p) for p in cache.photos],
        )
        total_steps = config.epochs * len(sampler)
        if config.recipe == "seed":
            model: nn.Module = SeedSiamese(spec.height, spec.width).to(device)
            optimisation = Optimisation.of(torch.optim.Adam(model.parameters(), lr=5e-4), total_steps, device)
        else:
            # On its device before the optimizer sees its parameters.
            model = build_backbone(
                config.backbone, config.embedding_dim, spec.channels, config.pooling, config.parts
            )
            if _uses_pretrained(config) and config.init_weights is None:
                starting_weights = _start_from_imagenet(model, config)
            model = model.to(device)
            groups = _parameter_groups(model, config)
            head = _identity_head(config, len(class_names))
            if head is not None:
                head = head.to(device)
                groups.append({"params": list(head.parameters()), "lr": config.learning_rate})
            optimisation = Optimisation.adamw(
                groups, weight_decay=config.weight_decay, total_steps=total_steps, device=device
            )
        if config.init_weights is not None:
            _load_init_weights(model, config.init_weights)
        rng = np.random.default_rng(config.seed)
        # A mirrored flank is the other flank only when sides are merged.
        augment = Augmenter(
            spec, rng, horizontal_flip=config.sides == Sides.MERGED, erasing=config.random_erasing
        )
        checkpoint = (
            config.checkpoint_dir or config.out_path.parent / f"{config.out_path.stem}.checkpoints"
        ) / checkpoint_name
        return cls(
            config, model, head, optimisation, sampler, rng, augment, labels, device, checkpoint,
            starting_weights,
        )  # fmt: skip

    def run_epoch(self, cache: PhotoCache, on_step: Callable[[float], None], epoch: int) -> float:
        """One pass of the sampler's batches (the `epoch`-th, from 0); returns its mean loss."""
        config, device = self.config, self.device
        self.model.train()
        _freeze_statistics(self.model, config)
        if config.head_epochs:
            # _check_choices lets head epochs through only for ImageNet backbones, each with a trunk.
            trunk: nn.Module = self.model.trunk  # type: ignore[assignment]
            probing = epoch < config.head_epochs
            trunk.requires_grad_(not probing)
            if probing:
                # Its BatchNorm statistics stay ImageNet's too; AdamW skips parameters with no gradient.
                trunk.eval()
            else:
                _freeze_prefix(self.model, config)
        losses = []
        for batch in self.sampler.batches():
            images = torch.from_numpy(np.stack([self.augment(cache.images[i]) for i in batch]))
            images = images.to(device, non_blocking=True)
            batch_labels = torch.tensor([self.labels[i] for i in batch], device=device)
            with self.optimisation.autocast():
                loss = self._loss(images, batch_labels)
            losses.append(self.optimisation.step(loss))
            on_step(float(np.mean(losses)))
        return float(np.mean(losses))

    def _loss(self, images: torch.Tensor, batch_labels: torch.Tensor) -> torch.Tensor:
        if self.config.recipe == "seed":
            return _seed_pair_loss(self.model, images, batch_labels, self.rng)
        # Distances and margins in float32: half precision blurs small margins.
        embeddings = self.model(images).float()
        loss = batch_hard_triplet_loss(embeddings, batch_labels, self.config.triplet_margin)
        if self.head is not None:
            loss = loss + self.head(embeddings, batch_labels)
        return loss

    def save(self, epoch: int, history: list[dict[str, float]]) -> None:
        """Everything needed to go on after `epoch`, written whole or not at all."""
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        partial = self.checkpoint.with_suffix(".partial")
        torch.save(
            {
                "model": self.model.state_dict(),
                **self.optimisation.state(),
                "epoch": epoch,
                "history": history,
                "rng": json.dumps(self.rng.bit_generator.state),
                "sampler_rng": json.dumps(self.sampler.rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(),
                "config": json.dumps(asdict(self.config), default=str),
            },
            partial,
        )
        # Rename is atomic: a kill during the save never leaves a half-written checkpoint.
        partial.replace(self.checkpoint)

    def resume(self) -> None:
        """Back to where the checkpoint left off."""
        if not self.checkpoint.is_file():
            raise FinprintError(f"{self.checkpoint}: no checkpoint to resume from. Run without --resume.")
        # Loaded on the CPU: the RNG state must stay there; weights are copied to the model's device.
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        # --epochs may have grown since the checkpoint: the schedule stretches to the new end.
        self.optimisation.restore(state, self.config.epochs * len(self.sampler))
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.sampler.rng.bit_generator.state = json.loads(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.epochs_done, self.history = int(state["epoch"]), list(state["history"])


def train(
    config: TrainConfig, console: Console | None = None, photos: list[LabelledPhoto] | None = None
) -> TrainResult:
    """Train, calibrate the threshold on the validation individuals, export with the card.
    `photos`: learn from these instead of everything config's sources hold (a bench that keeps
    some animals out of training altogether)."""
    console = console or Console()
    _check_choices(config)
    started = time.perf_counter()
    seed_everything(config.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = pick_device(config.device)
    train_photos, validation_photos = _split_for_training(config, console, photos)
    spec = _input_spec(config)
    train_cache = PhotoCache(train_photos, spec, console)
    validation_cache = PhotoCache(validation_photos, spec, console)
    recipe = _Recipe.build(config, train_cache, spec, device)
    if config.final_fit:
        console.print(
            "--final-fit: two trainings, the first without the validation animals (its time left "
            "is shown), then one as long again on every animal."
        )
    if config.resume:
        recipe.resume()
        console.print(f"Resumed from {recipe.checkpoint} after epoch {recipe.epochs_done}.")
    validation = _Validation.of(validation_cache, spec, config.sides)
    _fit(recipe, train_cache, validation, console)
    calibrated = _calibrate(recipe.model, validation, config, console)
    learnt_from, history = train_cache, recipe.history
    if config.final_fit:
        learnt_from = PhotoCache.joined(train_cache, validation_cache)
        console.print(
            f"Final fit: training again on every animal, {len(learnt_from.photos)} photos of "
            f"{_count_individuals(learnt_from.photos)} individuals; the threshold stays the one set above."
        )
        recipe = _Recipe.build(config, learnt_from, spec, device, FINAL_FIT_CHECKPOINT)
        if config.resume and recipe.checkpoint.is_file():
            recipe.resume()
        _fit(recipe, learnt_from, _Validation.none(), console)
    card = _card(config, spec, recipe, calibrated, learnt_from.photos)
    parity = export_onnx(recipe.model, card, config.out_path)
    return TrainResult(
        card,
        calibrated.validation,
        parity,
        time.perf_counter() - started,
        history,
        len(learnt_from.skipped),
        config.final_fit,
    )


def _fit(recipe: _Recipe, cache: PhotoCache, validation: _Validation, console: Console) -> None:
    """The recipe's epochs, then what is done to the trained network before it is scored."""
    config = recipe.config
    _train_epochs(recipe, cache, validation, console)
    if config.weight_ensemble < 1.0:
        _ensemble_with_imagenet(recipe.model, config)
        recipe.starting_weights = {**recipe.starting_weights, "weight_ensemble": str(config.weight_ensemble)}
    if config.head_epochs:
        recipe.starting_weights = {**recipe.starting_weights, "head_epochs": str(config.head_epochs)}


def _train_epochs(recipe: _Recipe, cache: PhotoCache, validation: _Validation, console: Console) -> None:
    """The epochs not done yet, with a live bar (a line per epoch in logs and cron), a validation
    score and a checkpoint after each; their scores are appended to the recipe's history."""
    config, first_epoch, history = recipe.config, recipe.epochs_done, recipe.history
    steps_per_epoch = len(recipe.sampler)
    try:
        with training_progress(
            console, "epoch {task.fields[epoch]}", "  val rank-1 {task.fields[rank1]}"
        ) as progress:
            task = progress.add_task(
                "train",
                total=(config.epochs - first_epoch) * steps_per_epoch,
                epoch=first_epoch + 1,
                loss=0.0,
                rank1="-",
            )
            epochs_started = time.perf_counter()
            for epoch in range(first_epoch, config.epochs):

                def stepped(loss: float, shown_epoch: int = epoch + 1) -> None:
                    progress.update(task, advance=1, loss=loss, epoch=shown_epoch)

                mean_loss = recipe.run_epoch(cache, stepped, epoch)
                record = {"epoch": float(epoch + 1), "loss": mean_loss}
                per_set_text = ""
                if validation.usable():
                    per_set_text = validation.epoch_record(recipe.model, record)
                    progress.update(task, rank1=f"{record['validation_rank1']:.3f}")
                history.append(record)
                if not console.is_terminal:
                    # Logs and cron get one line per epoch; a terminal has the live bar.
                    line = f"epoch {epoch + 1}/{config.epochs} loss {record['loss']:.4f}"
                    if "validation_rank1" in record:
                        line += f" validation rank-1 {record['validation_rank1']:.3f}"
                    if per_set_text:
                        line += f" (per set:{per_set_text})"
                    per_epoch_s = (time.perf_counter() - epochs_started) / (epoch + 1 - first_epoch)
                    line += f", about {per_epoch_s * (config.epochs - epoch - 1) / 60:.0f} min left"
                    console.print(line, soft_wrap=True)
                recipe.save(epoch + 1, history)
    except KeyboardInterrupt:
        raise FinprintError(
            f"training interrupted; the last finished epoch is saved in {recipe.checkpoint}. "
            "Run the same command with --resume to go on."
        ) from None


def _card(
    config: TrainConfig,
    spec: InputSpec,
    recipe: _Recipe,
    calibrated: _Calibrated,
    photos: list[LabelledPhoto],
) -> ModelCard:
    """The model card of a finished training: its input, threshold and what it learnt from."""
    validation, per_source = calibrated.validation, calibrated.per_source
    starting_weights = recipe.starting_weights
    details: dict[str, Any] = {
        **({"pretrained": starting_weights} if starting_weights else {}),
        **_ingredients(config),
        "false_match_rate": config.false_match_rate,
        "synthetic_only": bool(config.data_dirs)
        and config.metadata is None
        and all((d / SYNTHETIC_MARKER).is_file() for d in config.data_dirs),
        "validation": None
        if validation is None
        else {
            **card_metrics(validation),
            "best_balanced_accuracy": round(validation.best_balanced_accuracy, 4),
            "best_balanced_threshold": round(validation.best_balanced_threshold, 4),
            **({"per_set": {name: card_metrics(m) for name, m in per_source.items()}} if per_source else {}),
        },
    }
    dataset = ", ".join(
        [d.name for d in config.data_dirs] + ([config.metadata.name] if config.metadata else [])
    )
    return trained_card(
        recipe.model,
        spec=spec,
        embedding=EmbeddingSpec(
            dim=5 if config.recipe == "seed" else config.embedding_dim,
            l2_normalized=config.recipe != "seed",
        ),
        sides=config.sides,
        threshold=calibrated.threshold,
        learnt_from=TrainedOn(
            dataset,
            photos,
            config.recipe,
            "seed-siamese" if config.recipe == "seed" else config.backbone,
            config.epochs,
            config.seed,
            details,
        ),
        extra=calibrated.extra,
    )


def _ingredients(config: TrainConfig) -> dict[str, Any]:
    """The card's record of how the network was trained, where it differs from the plain triplet
    recipe; `pooling` and `parts` are also what a later fine-tuning needs to rebuild the network."""
    if config.recipe == "seed":
        return {}
    recorded: dict[str, Any] = {"loss": config.loss, "pooling": config.pooling}
    if config.random_erasing:
        recorded["random_erasing"] = config.random_erasing
    if config.parts:
        recorded["parts"] = config.parts
    if config.final_fit:
        # The card's validation figures and threshold are the calibration network's.
        recorded["final_fit"] = True
    if config.loss == "softmax+triplet":
        recorded["label_smoothing"] = config.label_smoothing
    if _uses_pretrained(config):
        recorded["trunk_lr_scale"] = config.trunk_lr_scale
    return recorded


def _validation_per_source(
    vectors: np.ndarray, photos: list[LabelledPhoto], labels: list[str]
) -> dict[str, ReidMetrics]:
    """Validation scores of each source set alone, when training mixed several."""
    sources = [source_of(photo) for photo in photos]
    scores: dict[str, ReidMetrics] = {}
    for name in sorted(set(sources) - {""}):
        rows = [i for i, source in enumerate(sources) if source == name]
        if len({labels[i] for i in rows}) < 2:
            continue
        scores[name] = reid_metrics(
            vectors[rows], [labels[i] for i in rows], [photos[i].encounter for i in rows]
        )
    return scores


def card_metrics(metrics: ReidMetrics) -> dict[str, float]:
    """The scores a model card keeps of a validation, pooled or of one source set."""
    return {
        "individuals": metrics.n_individuals,
        "roc_auc": round(metrics.roc_auc, 4),
        "rank1": round(metrics.rank1, 4),
        "mAP": round(metrics.mean_average_precision, 4),
    }


def _interval_text(interval: tuple[float, float] | None) -> str:
    """' (low to high)': how far resampling the identities moves a figure; '' without one."""
    return f" ({interval[0]:.3f} to {interval[1]:.3f})" if interval else ""


def _count_individuals(photos: list[LabelledPhoto]) -> int:
    return len({p.individual for p in photos})


def calibrate_probability(vectors: np.ndarray, labels: list[str]) -> Calibration:
    """Isotonic P(same identity | distance) on every validation pair."""
    from catalog.offline.metrics import pairwise_distances

    label_array = np.asarray(labels)
    distances = pairwise_distances(vectors.astype(np.float64))
    upper = np.triu(np.ones_like(distances, dtype=bool), 1)
    same = label_array[:, None] == label_array[None, :]
    return fit_isotonic(distances[same & upper], distances[~same & upper])


def calibrate_threshold_per_set(
    vectors: np.ndarray, photos: list[LabelledPhoto], labels: list[str], config: TrainConfig
) -> tuple[float, list[SetOperatingPoint]]:
    """The card's threshold from each validation set's own pairs (threshold_safe_per_set)."""
    groups = pair_distances_by_group(
        vectors, labels, [p.encounter for p in photos], [source_of(p) for p in photos]
    )
    return threshold_safe_per_set(
        groups, config.false_match_rate, config.min_true_match_rate, config.unserved_false_match_rate
    )


def threshold_rule_card(points: list[SetOperatingPoint], config: TrainConfig) -> dict[str, Any]:
    """What the card says of how its threshold was chosen and what it does to each set."""
    return {
        "rule": "strictest per-set threshold at the false-match rate among sets it serves, "
        "at the unserved rate on the others",
        "false_match_rate": config.false_match_rate,
        "min_true_match_rate": config.min_true_match_rate,
        "unserved_false_match_rate": config.unserved_false_match_rate,
        "per_set": {
            point.name or "all": {
                "own_threshold": round(point.own_threshold, 4),
                "decides": point.decides,
                "false_match_rate": round(point.false_match_rate, 6),
                "true_match_rate": round(point.true_match_rate, 4),
                "negative_pairs": point.negative_pairs,
            }
            for point in points
        },
    }


def _seed_pair_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator
) -> torch.Tensor:
    """The seed study's pairs: each photo paired with a random partner, half of them same-fish."""
    n = len(labels)
    partners = []
    for i in range(n):
        want_same = rng.random() < 0.5
        pool = [j for j in range(n) if j != i and (labels[j] == labels[i]) == want_same]
        partners.append(int(rng.choice(pool)) if pool else (i + 1) % n)
    embeddings = model(images)
    same = (labels == labels[partners]).float()
    return contrastive_loss(embeddings, embeddings[partners], same, margin=2.0)


def _load_init_weights(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FinprintError(f"{path}: no such weights file. Give a local torchvision or timm state dict.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    target = getattr(model, "trunk", model)
    _, unexpected = target.load_state_dict(state, strict=False)
    loaded = len(state) - len(unexpected)
    if loaded == 0:
        raise FinprintError(f"{path}: none of its weights fit the backbone. Check it is a matching ResNet.")
