"""Training data: decoded photos cached in memory, fish-appropriate augmentation, P x K batches."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter
from rich.console import Console

from catalog.errors import TrainingDataError
from catalog.modelcard import InputSpec
from catalog.offline.labels import LabelledPhoto
from catalog.preprocess import load_image, to_tensor


class PhotoCache:
    """Each photo decoded once (draft mode, EXIF orientation, stretched to the input size)."""

    def __init__(self, photos: list[LabelledPhoto], spec: InputSpec, console: Console | None = None) -> None:
        self.images: list[Image.Image] = []
        self.photos: list[LabelledPhoto] = []
        self.skipped: list[tuple[str, str]] = []
        for photo in photos:
            try:
                image = load_image(photo.path, spec, photo.bbox)
                self.images.append(image.resize((spec.width, spec.height), Image.Resampling.BILINEAR))
                self.photos.append(photo)
            except (OSError, SyntaxError, ValueError) as exc:
                self.skipped.append((str(photo.path), str(exc)))
        if self.skipped and console is not None:
            console.print(
                f"[yellow]Skipped {len(self.skipped)} unreadable photo(s), e.g. {self.skipped[0][0]}"
            )

    @classmethod
    def joined(cls, first: PhotoCache, second: PhotoCache) -> PhotoCache:
        """Both caches' photos, not decoded again: a final fit learns from the validation ones too."""
        both = cls.__new__(cls)  # nothing to load: the images are the two caches'
        both.images = first.images + second.images
        both.photos = first.photos + second.photos
        both.skipped = first.skipped + second.skipped
        return both


class Augmenter:
    """Rotation, scale, shift, light, contrast, underwater colour cast and blur; never a mirror
    image, because a mirrored left flank would teach the network that it is a right flank."""

    def __init__(
        self, spec: InputSpec, rng: np.random.Generator, horizontal_flip: bool, erasing: float = 0.0
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.horizontal_flip = horizontal_flip
        # Random erasing (Zhong et al. 2020): this share of photos gets a rectangle of noise, as a
        # fin, a rock or another fish hides part of a flank in the field.
        self.erasing = erasing

    def __call__(self, image: Image.Image) -> np.ndarray:
        rng = self.rng
        width, height = image.size
        angle = rng.uniform(-12, 12)
        scale = rng.uniform(0.85, 1.12)
        shift = (round(rng.uniform(-0.06, 0.06) * width), round(rng.uniform(-0.06, 0.06) * height))
        fill = tuple(int(v) for v in np.asarray(image).reshape(-1, len(image.getbands())).mean(axis=0))
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, translate=shift, fillcolor=fill)
        if scale != 1.0:
            crop_w, crop_h = width / scale, height / scale
            left, top = (width - crop_w) / 2, (height - crop_h) / 2
            image = image.transform(
                (width, height),
                Image.Transform.EXTENT,
                (left, top, left + crop_w, top + crop_h),
                Image.Resampling.BILINEAR,
                fillcolor=fill,
            )
        if self.horizontal_flip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < 0.3:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
        pixels = np.asarray(image, dtype=np.float32)
        contrast = rng.uniform(0.75, 1.25)
        brightness = rng.uniform(0.7, 1.3)
        pixels = ((pixels - pixels.mean()) * contrast + pixels.mean()) * brightness
        if pixels.ndim == 3:
            # Water absorbs red first: a random blue-green cast.
            pixels *= np.array(
                [rng.uniform(0.65, 1.05), rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.2)],
                dtype=np.float32,
            )
        pixels += rng.normal(0, rng.uniform(0, 5), pixels.shape).astype(np.float32)
        # Drawn only when asked for, so that a recipe without it sees the same photos as before.
        if self.erasing and rng.random() < self.erasing:
            _erase_rectangle(pixels, rng)
        augmented = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        return to_tensor(augmented, self.spec)


def _erase_rectangle(pixels: np.ndarray, rng: np.random.Generator) -> None:
    """Noise over a random rectangle of 2-30% of the image, its aspect between 1:3 and 3:1."""
    height, width = pixels.shape[:2]
    area = rng.uniform(0.02, 0.3) * height * width
    aspect = float(np.exp(rng.uniform(np.log(1 / 3), np.log(3))))
    box_h = min(height, max(1, round(float(np.sqrt(area * aspect)))))
    box_w = min(width, max(1, round(float(np.sqrt(area / aspect)))))
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    region = pixels[top : top + box_h, left : left + box_w]
    region[...] = rng.uniform(0, 255, region.shape).astype(np.float32)


class PKSampler:
    """Batches of P individuals x K photos each, as batch-hard mining needs.

    With several source sets (`groups`, one name per photo), every batch comes from one set:
    batch-hard mining then always pits an animal against look-alikes of its own kind. Mixed
    batches of 16 identities drawn from ~900 almost never held two fs48 fish, so the network
    learnt to tell a zebra from a fish and the drawn fish from each other, and lost what ImageNet
    gave it for telling two real fish apart. Sets are drawn in proportion to the square root of
    their photos, so that a small set is seen often without being learnt by heart."""

    def __init__(
        self,
        labels: list[int],
        individuals_per_batch: int,
        photos_per_individual: int,
        seed: int,
        groups: list[str] | None = None,
    ) -> None:
        self.by_label: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            self.by_label.setdefault(label, []).append(index)
        self.usable = sorted(label for label, items in self.by_label.items() if len(items) >= 2)
        if len(self.usable) < 2:
            raise TrainingDataError(
                "need at least 2 individuals with 2 or more photos each to train; found "
                f"{len(self.usable)}. Add photos, or check the folder layout."
            )
        group_of_label = {
            label: (groups[items[0]] if groups else "") for label, items in self.by_label.items()
        }
        by_group: dict[str, list[int]] = {}
        for label in self.usable:
            by_group.setdefault(group_of_label[label], []).append(label)
        # A set with a single usable identity has no negatives of its own kind to mine.
        self.groups = [members for _, members in sorted(by_group.items()) if len(members) >= 2] or [
            self.usable
        ]
        sizes = np.array([sum(len(self.by_label[label]) for label in g) for g in self.groups], dtype=float)
        self.group_weights = np.sqrt(sizes) / np.sqrt(sizes).sum()
        self.p = min(individuals_per_batch, len(self.usable))
        self.k = photos_per_individual
        self.rng = np.random.default_rng(seed)
        self.n_photos = sum(len(self.by_label[label]) for label in self.usable)

    def __len__(self) -> int:
        return max(1, self.n_photos // (self.p * self.k))

    def batches(self) -> list[list[int]]:
        result = []
        for _ in range(len(self)):
            members = (
                self.groups[int(self.rng.choice(len(self.groups), p=self.group_weights))]
                if len(self.groups) > 1
                else self.groups[0]
            )
            chosen = self.rng.choice(members, size=min(self.p, len(members)), replace=False)
            batch: list[int] = []
            for label in chosen:
                items = self.by_label[int(label)]
                batch.extend(int(i) for i in self.rng.choice(items, size=self.k, replace=len(items) < self.k))
            result.append(batch)
        return result


def negative_pair_batches(
    pairs: list[tuple[int, int]],
    labels: list[int],
    photos_per_individual: int,
    pairs_per_batch: int,
    rng: np.random.Generator,
) -> list[list[int]]:
    """Batches built around pairs of photos that must not match (a person said they differ):
    both photos of each pair, each with photos_per_individual - 1 others of its individual, so
    that batch-hard mining pits every such pair against each other once an epoch."""
    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    order = [pairs[int(i)] for i in rng.permutation(len(pairs))]
    batches = []
    for start in range(0, len(order), pairs_per_batch):
        batch: list[int] = []
        for pair in order[start : start + pairs_per_batch]:
            for photo in pair:
                others = by_label[labels[photo]]
                batch.append(photo)
                batch.extend(int(i) for i in rng.choice(others, size=photos_per_individual - 1))
        batches.append(batch)
    return batches


def plain_tensors(images: list[Image.Image], spec: InputSpec) -> torch.Tensor:
    return torch.from_numpy(np.stack([to_tensor(image, spec) for image in images]))
