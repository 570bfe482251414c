"""``geofloodsam segment``: the command line of
:func:`geofloodsam.segmentation.pipeline.segment`.
"""

from __future__ import annotations

from pathlib import Path

import click

from geofloodsam.cli.options import (
    bands_option,
    checkpoint_option,
    clicked_only_option,
    device_option,
    mapping_options,
    method_option,
    model_option,
    precision_option,
    prompts_layer_option,
    quiet_option,
    runtime_option,
    sensor_option,
    stretch_option,
)
from geofloodsam.segmentation.config import SegmentConfig


@click.command("segment")
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--prompts",
    "-p",
    type=click.Path(path_type=Path),
    help="Points (water clicks, optional `label` 1/0 and `object` columns) and boxes "
    "(polygons) in GeoJSON, GeoPackage or Shapefile, any CRS. Without it: promptless mode.",
)
@click.option(
    "--outdir", "-o", type=click.Path(path_type=Path), help="Output folder [default: the scene's]."
)
@model_option()
@checkpoint_option
@click.option(
    "--decoder",
    help="pretrained, flood or satellite (shipped adapted models: flood photos, satellite RGB), "
    "flood-decoder-only / satellite-decoder-only (the decoder-only models they replaced) or a "
    "decoder file [default: satellite].",
)
@sensor_option
@method_option
@bands_option
@stretch_option
@mapping_options()
@click.option("--save-prob", is_flag=True, help="Also write <stem>_prob.tif (0-255).")
@device_option
@precision_option
@runtime_option
@click.option("--prompts-crs", help="CRS of a prompts file that has none, e.g. EPSG:4326.")
@prompts_layer_option
@clicked_only_option
@quiet_option("No progress bar and no summary.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run the tile work on the Dask cluster at ADDRESS (e.g. tcp://head:8786); scenes "
    "and weights must be at the same paths on every worker.",
)
@click.option(
    "--workers", type=int, help="Run the tile work on a local Dask cluster of N processes."
)
@click.option(
    "--threads",
    type=int,
    help="Torch threads per tile task [default: all cores; on Dask, each worker's share of "
    "its host]. The same value gives bit-identical outputs in-process and on Dask.",
)
def segment(scenes: tuple[Path, ...], prompts: Path | None, outdir: Path | None, **options) -> None:
    """Map flood water in SCENES (georeferenced rasters) with SAM, tile by tile.

    SCENES are one or more rasters, or text files (.txt, .lst, .list) listing one raster
    path a line. One prompts file serves all scenes: each feature prompts every scene that
    contains it. For each scene, writes <stem>_mask.tif (COG: 1 water, 0 dry, 255 nodata),
    <stem>_flood.gpkg (layer `flood`), <stem>_run.json and, with --save-prob,
    <stem>_prob.tif into OUTDIR. Without --scheduler or --workers the work runs in-process.
    """
    from geofloodsam.segmentation.pipeline import segment as run_segment

    config = SegmentConfig(**options)  # parsed and checked: one-line errors
    # one path or several: whether one path is a scene list, the pipeline decides
    run_segment(scenes[0] if len(scenes) == 1 else list(scenes), prompts, outdir, config)
