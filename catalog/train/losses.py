"""Metric-learning losses: batch-hard triplet (finprint) and contrastive pairs (the seed study)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _not_negative(same: torch.Tensor, labels: torch.Tensor, unsure: torch.Tensor | None) -> torch.Tensor:
    """Pairs of batch rows that are no negative: the `same` label, or labels `unsure[a, b]` says
    may be one animal (two catalogue entries of one fish that nobody has merged yet)."""
    if unsure is None:
        return same
    return same | unsure[labels[:, None], labels[None, :]]


def batch_hard_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float, unsure: torch.Tensor | None = None
) -> torch.Tensor:
    """For each anchor: its farthest same-label and nearest other-label photo in the batch.
    `unsure`: a labels x labels boolean matrix of label pairs never used as each other's negative."""
    distances = torch.cdist(embeddings, embeddings).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    not_negative = _not_negative(same, labels, unsure)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive_mask = same & ~eye
    hardest_positive = (distances * positive_mask).amax(dim=1)
    # Push same-label (and unsure) entries out of the running for the nearest negative.
    hardest_negative = (distances + not_negative.float() * 1e6).amin(dim=1)
    valid = positive_mask.any(dim=1) & (~not_negative).any(dim=1)
    if not valid.any():
        return embeddings.sum() * 0.0
    losses = F.relu(margin + hardest_positive - hardest_negative)
    return losses[valid].mean()


def threshold_pair_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    threshold: float,
    margin: float,
    unsure: torch.Tensor | None = None,
) -> torch.Tensor:
    """Every same-label pair pulled under threshold - margin, every other pair pushed beyond
    threshold + margin: a catalogue decides at one fixed distance, which a relative triplet
    margin never looks at (a re-sighting at 0.6 beside strangers at 1.0 satisfies it, and is
    missed at a threshold of 0.4). Label pairs `unsure` marks are neither pulled nor pushed."""
    distances = torch.cdist(embeddings, embeddings).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    positives = same & upper
    negatives = ~_not_negative(same, labels, unsure) & upper
    loss = embeddings.sum() * 0.0
    if positives.any():
        loss = loss + F.relu(distances[positives] - (threshold - margin)).pow(2).mean()
    if negatives.any():
        loss = loss + F.relu((threshold + margin) - distances[negatives]).pow(2).mean()
    return loss


def contrastive_loss(
    first: torch.Tensor, second: torch.Tensor, same: torch.Tensor, margin: float
) -> torch.Tensor:
    """Hadsell et al.: pull same pairs together, push different pairs beyond `margin`."""
    distance = F.pairwise_distance(first, second)
    return torch.mean(same * distance.pow(2) + (1 - same) * F.relu(margin - distance).pow(2))


class CosFaceHead(torch.nn.Module):
    """Cosine softmax over a class centre per individual, used only in training: with a margin,
    CosFace (Wang et al. 2018); without one and with label smoothing, the identity loss that the
    re-identification "bag of tricks" (Luo et al. 2019) trains beside the triplet."""

    def __init__(
        self,
        embedding_dim: int,
        n_classes: int,
        scale: float = 16.0,
        margin: float = 0.2,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.centres = torch.nn.Parameter(torch.randn(n_classes, embedding_dim) * 0.01)
        self.scale = scale
        self.margin = margin
        self.label_smoothing = label_smoothing

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.normalize(embeddings, dim=1) @ F.normalize(self.centres, dim=1).T
        margins = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype) * self.margin
        return F.cross_entropy(self.scale * (cosine - margins), labels, label_smoothing=self.label_smoothing)
