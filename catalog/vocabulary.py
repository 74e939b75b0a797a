"""The domain's words as enums, shared by the library and the command line (one spelling each)."""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

# Who the night's own decisions (grouping, encounter links) are recorded as made by.
FINPRINT = "finprint"


class SightingStatus(StrEnum):
    """What finprint (or a person) decided about one photo."""

    NEW = "new"
    MATCHED = "matched"
    REVIEW = "review"
    CONFIRMED = "confirmed"


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"


class DecisionAction(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"
    MERGE = "merge"
    SPLIT = "split"
    RENAME = "rename"
    LINK = "link"
    # The night's grouping (catalog.encounters) moved photos of one animal to one individual.
    GROUP = "group"
    # A person ruled two entries different fish (a look-alike that is not the same animal):
    # nothing moves; look-alike lists and the browser review stop offering the pair.
    DIFFERENT = "different"


class Side(StrEnum):
    LEFT = "left"
    RIGHT = "right"


class Crop(StrEnum):
    HEAD = "head"
    BODY = "body"


class Sides(StrEnum):
    """The model card's `sides`: whether left and right flanks are different identities."""

    SPLIT = "split"
    MERGED = "merged"


class Split(StrEnum):
    """How validation photos are chosen (catalog.offline.labels.split_photos)."""

    DISJOINT = "disjoint"
    OPEN = "open"
    TIME = "time"


# The photos a photo is compared with: "flank/crop", "*" for what is not told apart
# (identify.partition_key); each has its own HNSW graph.
Partition = NewType("Partition", str)


class Recipe(StrEnum):
    FINPRINT = "finprint"
    SEED = "seed"


class Backbone(StrEnum):
    MOBILENETV2 = "mobilenetv2"
    EFFICIENTNET_LITE0 = "efficientnet-lite0"
    SMALL = "small"
    RESNET18 = "resnet18"


class Loss(StrEnum):
    """What training minimises (catalog.train.losses): the batch-hard triplet alone, or with an
    identity loss over the training animals beside it."""

    TRIPLET = "triplet"
    SOFTMAX_TRIPLET = "softmax+triplet"
    COSFACE_TRIPLET = "cosface+triplet"


class Pooling(StrEnum):
    """How the trunk's feature map becomes one vector (catalog.train.nets)."""

    AVG = "avg"
    GEM = "gem"


class PretrainedBackbone(StrEnum):
    """The backbones whose ImageNet weights catalog.train.pretrained can fetch."""

    MOBILENETV2 = "mobilenetv2"
    EFFICIENTNET_LITE0 = "efficientnet-lite0"


class KeypointDetector(StrEnum):
    """What verification finds and matches keypoints with (catalog.detectors)."""

    SIFT = "sift"
    XFEAT = "xfeat"


class Caution(StrEnum):
    """Why keypoints that agree were not allowed to join a photo to an individual (kept with its
    sighting; the reports say it in words)."""

    # The embedding puts the two farther apart than same-animal pairs reach: review at most.
    BEYOND_REACH = "beyond_reach"
    # The agreeing keypoints are the same pixels: one photograph seen twice (a copy, two crops of
    # one frame), not a re-sighting.
    ONE_PHOTOGRAPH = "one_photograph"


CAUTION_WORDS = {
    Caution.BEYOND_REACH: "keypoints agree, but the embedding puts the two farther apart than the same "
    "animal's photos reach: for a person to check",
    Caution.ONE_PHOTOGRAPH: "one photograph seen twice (the same pixels as the earlier photo: a copy or "
    "two crops of one frame), not a re-sighting: for a person to check",
}
