"""``geofloodsam flood``: the command line of :func:`geofloodsam.change.pipeline.flood`."""

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


@click.command("flood")
@click.argument("after", type=click.Path(path_type=Path))
@click.option("--before", "-b", type=click.Path(path_type=Path),
              help="The scene before the flood (any CRS, resolution, extent overlapping AFTER), "
              "mapped exactly as AFTER.")
@click.option("--reference-water", type=click.Path(path_type=Path),
              help="Instead of --before: a water raster (water where value >= --reference-min) "
              "or water polygons, any CRS.")
@click.option("--reference-min", default=1.0, show_default=True, type=float,
              help="Reference raster values at least this are water (e.g. 50 for an "
              "occurrence layer in percent).")
@click.option("--reference-layer", help="The layer of a reference vector file with several.")
@click.option("--prompts", "-p", type=click.Path(path_type=Path),
              help="Water prompts of AFTER (as for `segment`); without: promptless.")
@click.option("--before-prompts", type=click.Path(path_type=Path),
              help="Water prompts of BEFORE; without: BEFORE is mapped promptless with "
              "AFTER's method and decoder.")
@click.option("--outdir", "-o", type=click.Path(path_type=Path),
              help="Output folder [default: AFTER's folder].")
@click.option("--change", default="auto", show_default=True,
              type=click.Choice(["auto", "water", "log-ratio"]),
              help="water: compare the two water masks; log-ratio: Sentinel-1 pairs, the "
              "backscatter's change decides; auto: log-ratio for a Sentinel-1 pair whose "
              "log-ratio shows a changed population, else water.")
@click.option("--save-water", is_flag=True,
              help="Also write <stem>_water_after.tif and <stem>_water_before.tif.")
@click.option("--allow-mixed-sensors", is_flag=True,
              help="Compare a radar (Sentinel-1) scene with an optical one.")
@model_option()
@checkpoint_option
@click.option("--decoder", help="pretrained, flood, satellite (or flood-decoder-only, "
              "satellite-decoder-only) or a decoder file [default: by "
              "sensor and method, as for `segment`; BEFORE uses AFTER's].")
@sensor_option
@method_option
@bands_option
@stretch_option
@mapping_options("class polygons")
@device_option
@precision_option
@runtime_option
@click.option("--prompts-crs", help="CRS of a prompts file that has none, e.g. EPSG:4326.")
@prompts_layer_option
@clicked_only_option
@quiet_option("No progress bar and no summary.")
@click.option("--scheduler", metavar="ADDRESS", help="Run the tile work on this Dask cluster.")
@click.option("--workers", type=int, help="Run the tile work on a local Dask cluster of N "
              "processes.")
@click.option("--threads", type=int, help="Torch threads per tile task (as for `segment`).")
def flood(
    after: Path, before: Path | None, prompts: Path | None, before_prompts: Path | None,
    outdir: Path | None, **options,
) -> None:
    """Flood extent in AFTER: water now that was dry in BEFORE (or in a reference layer).

    Both scenes are mapped as `segment` maps them, then compared on AFTER's grid. Writes into
    OUTDIR <stem>_change.tif (COG: 1 flood, 2 permanent water, 3 receded, 0 dry, 255 nodata)
    with its style <stem>_change.qml, <stem>_change.gpkg (layers flood, permanent_water,
    receded) and <stem>_change_run.json (areas of each class, both scenes' records).
    """
    from geofloodsam.change.config import FloodConfig
    from geofloodsam.change.pipeline import flood as run_flood

    config = FloodConfig.with_overrides(None, **options)  # parsed and checked
    run_flood(after, before, outdir, prompts, before_prompts, config)
