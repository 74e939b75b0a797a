"""Every embedding side by side on the individuals the default model never trained on, per shared set.

Usage: python bench/bench_models.py [--model NAME=PATH ...] [--work DIR] [--no-baselines]

Then, for rank-1 and mAP, each row's difference from the shipped default with its 95% interval,
resampling the held-out animals (a slice of 4-6 animals decides by a few queries: a difference
whose interval holds 0 is not evidence either way).

Rows: the shipped default model, each `--model` (earlier defaults, other fine-tuned backbones, a
seed-recipe model), the ImageNet backbones with no training at all (their pooled features), and a
colour histogram of the photo (no learning). Columns: the held-out individuals of each set that
`just train-default` kept back (bench/heldout.py). Each model is scored on its card's identities
(flank and crop apart when its `sides` is split), a photo's own encounter never its match.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from benchtable import bench_console
from heldout import held_out_or_say, named_models
from rich.console import Console
from rich.table import Table

from catalog.embed import Embedder
from catalog.modelcard import InputSpec
from catalog.offline.evaluate import embed_labelled
from catalog.offline.labels import LabelledPhoto
from catalog.offline.metrics import QueryScores, ReidMetrics, paired_bootstrap, reid_metrics_by_query
from catalog.preprocess import load_image
from catalog.vocabulary import Sides

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "catalog" / "models" / "default.onnx"
MEASURES = {
    "rank-1": lambda m: m.rank1,
    "rank-5": lambda m: m.rank5,
    "mAP": lambda m: m.mean_average_precision,
    "ROC AUC": lambda m: m.roc_auc,
    "TAR at FAR 1%": lambda m: m.tar_at_far_1pct,
}
HISTOGRAM_BINS = (8, 4, 4)  # hue, saturation, value


def colour_histogram(photos: list[LabelledPhoto]) -> tuple[np.ndarray, list[LabelledPhoto]]:
    """An HSV histogram of each photo (bbox applied), square-rooted and L2-normalised (Hellinger)."""
    spec = InputSpec(128, 128, 3, (0.0,) * 3, (1.0,) * 3)
    vectors, kept = [], []
    for photo in photos:
        try:
            image = load_image(photo.path, spec, photo.bbox).resize((128, 128))
        except (OSError, SyntaxError, ValueError):
            continue
        hsv = np.asarray(image.convert("HSV"), dtype=np.int64).reshape(-1, 3)
        bins = np.asarray(HISTOGRAM_BINS)
        cells = (hsv * bins // 256) @ np.asarray([bins[1] * bins[2], bins[2], 1])
        counts = np.bincount(cells, minlength=int(np.prod(bins))).astype(np.float64)
        vector = np.sqrt(counts / counts.sum())
        vectors.append(vector / np.linalg.norm(vector))
        kept.append(photo)
    return np.asarray(vectors, dtype=np.float32), kept


def untrained_backbone(name: str, out: Path, height: int = 224, width: int = 224) -> Path:
    """The ImageNet trunk alone, average-pooled and L2-normalised, exported with a card."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from catalog.modelcard import EmbeddingSpec, ModelCard
    from catalog.train import pretrained
    from catalog.train.export import export_onnx, weights_version
    from catalog.train.loop import IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD
    from catalog.train.nets import build_backbone

    embedder = build_backbone(name, 16, 3)
    pretrained.load_backbone_weights(embedder, name, pretrained.fetch(name))
    features = embedder.trunk if name == "mobilenetv2" else embedder.trunk.features

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = embedder.trunk

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return F.normalize(features(image).mean(dim=(2, 3)), dim=1)

    model = Pooled()
    mean, std = (LITE_MEAN, LITE_STD) if name == "efficientnet-lite0" else (IMAGENET_MEAN, IMAGENET_STD)
    card = ModelCard(
        input=InputSpec(height, width, 3, mean, std),
        embedding=EmbeddingSpec(dim=1280),
        threshold=1.0,
        sides=Sides.SPLIT,
        model_version=weights_version(model),
        trained_on={"dataset": "ImageNet-1k only", "backbone": name},
    )
    export_onnx(model, card, out)
    return out


@dataclass(frozen=True)
class Scored:
    """One embedding on one set: the figures, and each query's own for the paired intervals."""

    metrics: ReidMetrics
    queries: QueryScores
    query_photos: tuple[Path, ...]
    query_animals: np.ndarray


def scored(vectors: np.ndarray, kept: list[LabelledPhoto], sides: str) -> Scored:
    metrics, per_query = reid_metrics_by_query(
        vectors, [p.class_key(sides) for p in kept], [p.encounter for p in kept]
    )
    return Scored(
        metrics,
        per_query,
        tuple(kept[row].path for row in per_query.rows),
        np.asarray([kept[row].individual for row in per_query.rows]),
    )


def score_model(path: Path, held_out: dict[str, list[LabelledPhoto]]) -> dict[str, Scored]:
    embedder = Embedder(path)
    scores = {}
    for name, photos in held_out.items():
        vectors, kept, _, _, _ = embed_labelled(embedder, photos, 64)
        scores[name] = scored(vectors, kept, embedder.card.sides)
    return scores


def score_histogram(held_out: dict[str, list[LabelledPhoto]]) -> dict[str, Scored]:
    return {name: scored(*colour_histogram(photos), Sides.SPLIT) for name, photos in held_out.items()}


def difference_cell(row: Scored, base: Scored, measure: str) -> str:
    """`row - base` with its 95% interval over resampled animals; * when the interval excludes 0."""
    if row.query_photos != base.query_photos:
        return "other queries"
    values = {"rank-1": lambda s: s.queries.rank1, "mAP": lambda s: s.queries.average_precision}[measure]
    difference, low, high = paired_bootstrap(values(row), values(base), base.query_animals)
    sure = "*" if low > 0 or high < 0 else " "
    return f"{difference:+.3f} ({low:+.2f}, {high:+.2f}){sure}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH of an ONNX model to add")
    parser.add_argument("--work", type=Path, default=Path("/tmp/finprint-train-default"))
    parser.add_argument("--no-baselines", action="store_true", help="skip the untrained backbones")
    parser.add_argument(
        "--untrained-size",
        default="224x224",
        help="HEIGHTxWIDTH the untrained backbones see (ImageNet's own); several, comma-separated",
    )
    args = parser.parse_args()
    console = bench_console()
    held_out = held_out_or_say(args.work, console)
    if not held_out:
        return
    rows: dict[str, dict[str, Scored]] = {"shipped default": score_model(DEFAULT_MODEL, held_out)}
    for label, path in named_models(args.model).items():
        rows[label] = score_model(path, held_out)
    with tempfile.TemporaryDirectory() as scratch:
        if not args.no_baselines:
            for size in args.untrained_size.split(","):
                height, width = (int(v) for v in size.split("x"))
                for backbone in ("mobilenetv2", "efficientnet-lite0"):
                    onnx_path = untrained_backbone(
                        backbone, Path(scratch) / f"{backbone}-{size}.onnx", height, width
                    )
                    rows[f"{backbone}, ImageNet only, {height}x{width}"] = score_model(onnx_path, held_out)
    rows["colour histogram"] = score_histogram(held_out)
    print_tables(console, rows, held_out)


def print_tables(
    console: Console, rows: dict[str, dict[str, Scored]], held_out: dict[str, list[LabelledPhoto]]
) -> None:
    """One table a measure, then each row's rank-1 and mAP difference from the shipped default."""
    sets = list(held_out)
    for measure, value in MEASURES.items():
        table = Table(title=f"{measure}, held-out individuals of the default model")
        table.add_column("model")
        for name in sets:
            table.add_column(f"{name} ({len({p.individual for p in held_out[name]})})", justify="right")
        for label, scores in rows.items():
            table.add_row(label, *(f"{value(scores[name].metrics):.3f}" for name in sets))
        console.print(table)
    base = rows["shipped default"]
    for measure in ("rank-1", "mAP"):
        table = Table(
            title=f"{measure}: difference from the shipped default (95% interval, animals resampled; "
            "* excludes 0)"
        )
        table.add_column("model")
        for name in sets:
            table.add_column(name, justify="right")
        for label, scores in rows.items():
            if label != "shipped default":
                table.add_row(label, *(difference_cell(scores[name], base[name], measure) for name in sets))
        console.print(table)


if __name__ == "__main__":
    main()
