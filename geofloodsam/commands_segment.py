"""``geofloodsam segment``: the command-line face of :func:`geofloodsam.segment.segment`."""

from __future__ import annotations

from pathlib import Path

import click

from geofloodsam.device import DEVICE_CHOICES


@click.command("segment")
@click.argument("scene", type=click.Path(path_type=Path))
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
@click.option("--model", default="vit_t", show_default=True, help="SAM model: vit_t, vit_b, ...")
@click.option(
    "--checkpoint", type=click.Path(path_type=Path), help="Model checkpoint [default: registry]."
)
@click.option(
    "--decoder",
    help="pretrained, flood (the shipped flood-tuned decoder) or a decoder file "
    "[default: flood when shipped, else pretrained].",
)
@click.option("--bands", help="1 or 3 band numbers, e.g. 4,3,2 [default: 1,2,3 or 1].")
@click.option(
    "--stretch", default="auto", show_default=True, help="auto (2-98 percentiles) or MIN,MAX."
)
@click.option("--tile-size", default=1024, show_default=True, type=int, help="Tile side (px).")
@click.option("--overlap", default=256, show_default=True, type=int, help="Tile overlap (px).")
@click.option(
    "--threshold", default=0.5, show_default=True, type=float, help="Water probability cut."
)
@click.option(
    "--min-area", default=0.0, show_default=True, type=float, help="Drop polygons below (m²)."
)
@click.option(
    "--simplify", default=0.0, show_default=True, type=float, help="Simplify polygons (metres)."
)
@click.option("--save-prob", is_flag=True, help="Also write <stem>_prob.tif (0-255).")
@click.option(
    "--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True
)
@click.option("--prompts-crs", help="CRS of a prompts file that has none, e.g. EPSG:4326.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def segment(scene: Path, prompts: Path | None, outdir: Path | None, **options) -> None:
    """Map flood water in SCENE (a georeferenced raster) with SAM, tile by tile.

    Writes <stem>_mask.tif (COG: 1 water, 0 dry, 255 nodata), <stem>_flood.gpkg (layer
    `flood`), <stem>_run.json and, with --save-prob, <stem>_prob.tif into OUTDIR.
    """
    from geofloodsam.segment import segment as run_segment

    run_segment(scene, prompts=prompts, outdir=outdir, **options)
