"""``geofloodsam finetune``: adapt SAM's mask decoder to flood water."""

from __future__ import annotations

from pathlib import Path

import click

from geofloodsam.cli.options import (
    bands_option,
    checkpoint_option,
    device_option,
    model_option,
    precision_option,
    quiet_option,
    runtime_option,
    sensor_option,
    stretch_option,
)
from geofloodsam.training.config import (
    ADAPT_CHOICES,
    AUGMENTS,
    PROMPT_MODES,
    TRAIN_CHOICES,
    FinetuneConfig,
)

_DEFAULTS = FinetuneConfig(data="")


def _weights(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(v) for v in value.split(","))
    except ValueError:
        weights = ()
    if len(weights) != 3 or min(weights) < 0:
        raise click.BadParameter("give three non-negative numbers DICE,BCE,IOU, e.g. 1,1,1")
    return weights


@click.command()
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Data set folder: splits.csv (id,image,mask,split), images/ + masks/, "
    "or S2Hand/ + LabelHand/ GeoTIFF chips.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Decoder checkpoint to write; curves.csv and curves.png go beside it.",
)
@model_option()
@checkpoint_option
@click.option(
    "--init-decoder",
    default=_DEFAULTS.init_decoder,
    show_default=True,
    help="Start from this decoder: pretrained, flood, satellite, flood-decoder-only, "
    "satellite-decoder-only (shipped) or a decoder file "
    "(e.g. a previous run's OUT, to train it further).",
)
@click.option(
    "--train",
    default=_DEFAULTS.train,
    show_default=True,
    type=click.Choice(TRAIN_CHOICES),
    help="What learns: the mask decoder only (encoders frozen); adapter: LoRA adapters in "
    "the image encoder with the decoder (vit_t; CPU-friendly crops, docs/finetuning.md); "
    "full: the whole image encoder with the decoder (for a GPU). OUT is then an adapted "
    "model, used as --decoder OUT like a decoder.",
)
@click.option(
    "--rank", default=_DEFAULTS.rank, show_default=True, type=int,
    help="Rank of the LoRA adapters (--train adapter).",
)
@click.option(
    "--adapt", default=_DEFAULTS.adapt, show_default=True, type=click.Choice(ADAPT_CHOICES),
    help="Encoder layers that get adapters: attention projections, or those and the MLPs.",
)
@click.option(
    "--crop", default=_DEFAULTS.crop, show_default=True, type=int,
    help="Side of the training crops of the image resized as SAM resizes it "
    "(--train adapter|full; pixels of the 1024 model frame).",
)
@click.option(
    "--encoder-lr", default=None, type=float,
    help="Peak rate of the image encoder's trainable weights [default: --lr].",
)
@click.option("--epochs", default=_DEFAULTS.epochs, show_default=True, type=int)
@click.option(
    "--batch-size",
    default=_DEFAULTS.batch_size,
    show_default=True,
    type=int,
    help="Images per optimiser step.",
)
@click.option(
    "--prompts-per-image",
    default=_DEFAULTS.prompts_per_image,
    show_default=True,
    type=int,
    help="Prompts sampled per image per step (decoded on one embedding).",
)
@click.option("--lr", default=_DEFAULTS.lr, show_default=True, type=float, help="Peak AdamW rate.")
@click.option(
    "--prompt",
    default=_DEFAULTS.prompt,
    show_default=True,
    type=click.Choice(PROMPT_MODES),
    help="Training prompts: points, boxes (incl. the whole-image box), or both alternating.",
)
@click.option(
    "--augment",
    default=_DEFAULTS.augment,
    show_default=True,
    type=click.Choice(AUGMENTS),
    help="Flip/rotation variants of the train images (each one more encoder pass).",
)
@click.option(
    "--multimask",
    default=_DEFAULTS.multimask,
    show_default=True,
    type=click.Choice(["best", "all"]),
    help="Single-point prompts give 3 masks: train the best one (SAM's practice) or all.",
)
@click.option(
    "--loss-weights",
    default=f"{_DEFAULTS.dice_weight:g},{_DEFAULTS.bce_weight:g},{_DEFAULTS.iou_weight:g}",
    show_default=True,
    callback=_weights,
    help="Weights of the Dice, BCE and IoU-head (MSE) losses.",
)
@click.option(
    "--patience",
    default=_DEFAULTS.patience,
    show_default=True,
    type=int,
    help="Stop after this many epochs without a better val IoU.",
)
@sensor_option
@bands_option
@stretch_option
@click.option(
    "--cache-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Embedding cache (default: $GEOFLOODSAM_HOME/embeddings or the user cache).",
)
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, type=int)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run saved in OUT.resume.pt (same options).",
)
@device_option
@precision_option
@runtime_option
@quiet_option()
def finetune(
    data: Path, out: Path, resume: bool, quiet: bool, loss_weights: tuple[float, ...], **options
) -> None:
    """Fine-tune SAM's mask decoder on images with water masks (encoders frozen), or with
    --train adapter|full the image encoder too.

    Trains on the `train` split, keeps the epoch with the best IoU on `val` (the `test`
    split is never read) and writes a decoder (or adapted model) usable as `--decoder OUT`
    in `segment` and `evaluate`.
    """
    import shlex
    import sys

    from geofloodsam.training.finetune import finetune as run

    dice, bce, iou = loss_weights
    options.update(dice_weight=dice, bce_weight=bce, iou_weight=iou)
    command = shlex.join(["geofloodsam", *sys.argv[1:]])
    result = run(data, out, resume=resume, progress=not quiet, command=command, **options)
    val = result.val
    click.echo(
        f"wrote {result.out} (best epoch {result.best_epoch} of {result.epochs_run}; val IoU "
        f"box {val['iou_box']:.3f}, point {val['iou_point']:.3f}, whole image "
        f"{val['iou_none']:.3f})"
    )
