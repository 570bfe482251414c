"""``geofloodsam evaluate`` and ``geofloodsam evaluate-raster``."""

from __future__ import annotations

from pathlib import Path

import click

from geofloodsam.cli.options import (
    bands_option,
    checkpoint_option,
    device_option,
    methods_option,
    model_option,
    precision_option,
    quiet_option,
    runtime_option,
    sensor_option,
    stretch_option,
)
from geofloodsam.errors import GeofloodsamError
from geofloodsam.evaluation.config import PROMPT_CHOICES, EvaluateConfig

#: every option's default comes from here
_DEFAULTS = EvaluateConfig()


def _numbers(text: str | None, what: str, cast=float) -> list | None:
    """Comma-separated numbers of an option, one-line error otherwise."""
    if text is None:
        return None
    try:
        return [cast(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise GeofloodsamError(
            f"{what} must be comma-separated numbers, got {text!r}."
        ) from None


@click.command()
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="Data set folder (splits.csv, images/ + masks/, or Sen1Floods11-style chips: "
                   "S1Hand/ or S2Hand/ + LabelHand/; a folder holding both needs --sensor s1 "
                   "or s2, or give DIR/S1Hand itself, which finds ../LabelHand).")
@click.option("--split", default=_DEFAULTS.split, show_default=True,
              type=click.Choice(["auto", "train", "val", "test", "all"]),
              help="Which split to score ('all': every image). auto: 'test', except for a "
                   "chip folder without splits.csv: every chip (train/val/test pick the "
                   "tool's seeded split of the chips).")
@click.option("--decoder", "decoders", multiple=True, default=_DEFAULTS.decoders,
              show_default=True,
              help="Decoder to score, repeatable: 'pretrained', 'flood' or 'satellite' "
                   "(shipped), or a file written by `geofloodsam finetune`.")
@click.option("--prompt", "prompt_types", multiple=True, default=_DEFAULTS.prompt_types,
              show_default=True,
              type=click.Choice(PROMPT_CHOICES),
              help="Prompt type, repeatable: 'point' (deepest pixel of the largest water body), "
                   "'box' (box of all water), 'none' (whole-image box, as without prompts).")
@methods_option
@sensor_option
@click.option("--prompts-file", type=click.Path(path_type=Path),
              help="Score on the prompts of a saved prompts.json instead of deriving them.")
@click.option("-o", "--output", "out_dir", default="evaluation", show_default=True,
              type=click.Path(path_type=Path, file_okay=False), help="Report folder.")
@model_option("model_name")
@checkpoint_option
@device_option
@precision_option
@runtime_option
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Embedding cache folder (default: $GEOFLOODSAM_HOME/embeddings).")
@bands_option
@stretch_option
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, type=int,
              help="Seed of the tool-made split of folders without splits.csv.")
@click.option("--examples", default=_DEFAULTS.examples, show_default=True,
              type=click.IntRange(0, 12),
              help="Images per comparison collage and failure gallery (0: no collages).")
@quiet_option()
def evaluate(data: Path, out_dir: Path, quiet: bool, **options) -> None:
    """Score methods × decoders × prompt types against ground truth; write tables, plots and
    report.md.

    Every decoder is scored on the same prompts (saved to REPORT_DIR/prompts.json), and
    the image embeddings come from the shared cache, so each image is encoded once.

    GeoTIFF chips are read as their sensor's fixed composite (the sensor detected per chip,
    or --sensor), as segment reads them; with --bands or a --stretch other than auto they
    are read as before (those bands, that stretch, per chip) and the sensor only serves the
    water index. Chips whose label has no valid pixel or whose image is all nodata are
    skipped with a warning. metrics.csv and report.md give per row the mean and median of
    the per-image IoUs (images whose truth has water; the others' false-alarm area apart)
    and the pooled IoU (counts summed over the images), with 95 % bootstrap intervals.
    """
    from geofloodsam.evaluation.evaluate import evaluate as run

    config = EvaluateConfig(progress=not quiet, **options)  # parsed and checked
    metrics = run(data, out_dir, config)
    width = max([12, *(len(str(m)) for m in metrics["model"])])
    for row in metrics.itertuples():
        click.echo(
            f"{row.model:>{width}} {row.prompt:>6}  IoU {row.iou:.3f} (pooled "
            f"{row.pooled_iou:.3f})  Dice {row.dice:.3f}  Precision {row.precision:.3f}  "
            f"Recall {row.recall:.3f}  ({row.n_images} images"
            + (f", {row.n_no_water} without water: false alarm {row.no_water_false_alarm:.2%}"
               if row.n_no_water else "") + ")"
        )
    click.echo(f"report: {Path(out_dir) / 'report.md'}")


@click.command("evaluate-raster")
@click.argument("pred_path", metavar="PRED_MASK.tif", type=click.Path(path_type=Path))
@click.argument("truth_path", metavar="TRUTH.tif", type=click.Path(path_type=Path))
@click.option("--truth-water-values", default="1", show_default=True,
              help="Comma-separated truth values that mean water.")
@click.option("--truth-nodata", type=float,
              help="Truth value to exclude (default: the raster's nodata), e.g. -1.")
@click.option("-o", "--output", "out_dir", default="evaluation", show_default=True,
              type=click.Path(path_type=Path, file_okay=False), help="Report folder.")
@click.option("--classes", "classes", default=None, metavar="VALUES",
              help="Score a class raster (`flood`'s <stem>_change.tif) against a class truth "
              "per class, e.g. 1,2,3 (flood, permanent water, receded).")
@quiet_option("No progress bar.")
def evaluate_raster(
    pred_path, truth_path, truth_water_values, truth_nodata, out_dir, classes, quiet
) -> None:
    """Score a georeferenced water mask (1 water, 0 dry, 255 nodata) against a truth raster.

    The truth is aligned to the prediction's grid (nearest neighbour, any CRS); both are
    read window by window. Writes metrics.csv and report.md with water areas in m².
    """
    from geofloodsam.evaluation.raster import evaluate_raster as run
    from geofloodsam.evaluation.raster import write_raster_report
    from geofloodsam.files.workdirs import check_output_dir

    check_output_dir(out_dir)  # before the evaluation: a bad -o is found first
    if classes is not None:
        _evaluate_classes(pred_path, truth_path, classes, out_dir, quiet)
        return
    values = _numbers(truth_water_values, "--truth-water-values")
    score = run(pred_path, truth_path, values, truth_nodata, progress=not quiet)
    table = write_raster_report(score, out_dir, pred_path, truth_path)
    row = table.iloc[0]
    click.echo(
        f"IoU {row.iou:.3f}  Dice {row.dice:.3f}  Precision {row.precision:.3f}  "
        f"Recall {row.recall:.3f}  water: predicted {score.pred_water_m2 / 1e6:.4f} km², "
        f"true {score.truth_water_m2 / 1e6:.4f} km²"
    )
    click.echo(f"report: {Path(out_dir) / 'report.md'}")


def _evaluate_classes(pred_path, truth_path, classes, out_dir, quiet) -> None:
    from geofloodsam.evaluation.raster import evaluate_classes, write_class_report

    values = _numbers(classes, "--classes", int)
    if not values:
        raise GeofloodsamError("--classes needs class values, e.g. 1,2,3.")
    scores = evaluate_classes(pred_path, truth_path, values, progress=not quiet)
    table = write_class_report(scores, out_dir, pred_path, truth_path)
    for row in table.to_dict("records"):
        click.echo(
            f"{row['class']:>16} ({row['value']})  IoU {row['iou']:.3f}  Dice {row['dice']:.3f}  "
            f"Precision {row['precision']:.3f}  Recall {row['recall']:.3f}  predicted "
            f"{row['pred_m2'] / 1e6:.4f} km², true {row['truth_m2'] / 1e6:.4f} km²"
        )
    click.echo(f"report: {Path(out_dir) / 'report.md'}")
