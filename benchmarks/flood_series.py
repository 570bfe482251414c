"""``flood`` on two dates of a real series: the figure and the pixel check.

    python benchmarks/flood_series.py AFTER_DATE BEFORE_DATE [--series naip|pucallpa]
        [--out DIR] [--png FILE]

Runs ``flood`` (promptless, package defaults, threads 1, --save-water) on two dates of
``../shared/data/geo/`` (``../shared`` beside the repository, or ``$GEOFLOODSAM_SHARED``):
``naip-north-dakota/m_4709963_se_14_1_<date>.tif`` (NAIP, detected as such), or
``landsat-pucallpa/<year>.tif`` (Landsat SWIR1, NIR, Red, Green: read as ``--sensor rgb
--bands 1,2,3``, the false colour, since its band order is not NAIP's), then:

- checks that the flood area equals the after-water minus the water shared with before, to
  the pixel: BEFORE's saved mask is reprojected onto AFTER's grid here with
  ``rasterio.warp.reproject`` (nearest; not the warped VRT the command uses) and the counts
  are compared with run.json;
- renders BEFORE, AFTER and the classes over AFTER (flood red-orange, permanent water blue,
  receded yellow) side by side into the PNG.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOFLOODSAM_SHARED", ROOT.parent / "shared"))
#: series -> (path template, flood options, display bands)
SERIES = {
    "naip": ("data/geo/naip-north-dakota/m_4709963_se_14_1_{}.tif", {}, (1, 2, 3)),
    "pucallpa": ("data/geo/landsat-pucallpa/{}.tif", {"sensor": "rgb", "bands": "1,2,3"},
                 (1, 2, 3)),
}
COLOURS = {1: (255, 85, 0), 2: (30, 120, 255), 3: (255, 220, 0)}


def scene(series: str, date: str) -> Path:
    """The scene of ``date`` in ``series``."""
    return SHARED / SERIES[series][0].format(date)


def pixel_check(result) -> dict[str, int]:
    """Flood, permanent and after-water pixels recomputed from the saved masks."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(result.water_paths["after"]) as a:
        after = a.read(1)
        before = np.full(after.shape, 255, np.uint8)
        with rasterio.open(result.water_paths["before"]) as b:
            reproject(rasterio.band(b, 1), before, dst_transform=a.transform, dst_crs=a.crs,
                      dst_nodata=255, resampling=Resampling.nearest)
    valid = (after != 255) & (before != 255)
    a_water, b_water = (after == 1) & valid, (before == 1) & valid
    return {"after_water": int(a_water.sum()), "shared": int((a_water & b_water).sum()),
            "flood_recomputed": int((a_water & ~b_water).sum()),
            "flood_run_json": result.record["classes"]["flood"]["pixels"],
            "permanent_run_json": result.record["classes"]["permanent_water"]["pixels"]}


def render(result, after: Path, before: Path, png: Path, scale: float = 0.5,
           bands: tuple[int, ...] = (1, 2, 3)) -> None:
    """BEFORE | AFTER | classes over AFTER, side by side (cropped to the shorter scene)."""
    import rasterio
    from PIL import Image, ImageDraw

    with rasterio.open(after) as a, rasterio.open(before) as b:
        rgb_a = a.read(bands).transpose(1, 2, 0)
        rgb_b = b.read(bands).transpose(1, 2, 0)
    with rasterio.open(result.classes_path) as ds:
        classes = ds.read(1)
    over = rgb_a.astype(np.float32)
    for value, colour in COLOURS.items():
        hit = classes == value
        over[hit] = 0.3 * over[hit] + 0.7 * np.array(colour, np.float32)
    h = min(rgb_a.shape[0], rgb_b.shape[0])
    panels = [rgb_b[:h], rgb_a[:h], over[:h].astype(np.uint8)]
    gap = np.full((h, 8, 3), 255, np.uint8)
    image = Image.fromarray(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], 1))
    image = image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS)
    draw = ImageDraw.Draw(image)
    w = image.width // 3
    for i, text in enumerate((f"before {before.stem.split('_')[-1]}",
                              f"after {after.stem.split('_')[-1]}",
                              "flood / permanent water / receded")):
        draw.rectangle((i * w + 4, 4, i * w + 8 + 7 * len(text), 20), fill=(255, 255, 255))
        draw.text((i * w + 7, 6), text, fill=(0, 0, 0))
    png.parent.mkdir(parents=True, exist_ok=True)
    image.save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("after_date")
    parser.add_argument("before_date")
    parser.add_argument("--series", choices=sorted(SERIES), default="naip")
    parser.add_argument("--out", type=Path, default=Path("out/flood-series"))
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    from geofloodsam.change.pipeline import flood

    after, before = scene(args.series, args.after_date), scene(args.series, args.before_date)
    _, options, bands = SERIES[args.series]
    result = flood(after, before, outdir=args.out, save_water=True, quiet=True, threads=1,
                   **options)
    check = pixel_check(result)
    classes = {k: round(v["area_m2"] / 1e6, 4) for k, v in result.record["classes"].items()
               if "area_m2" in v}
    print(json.dumps({"classes_km2": classes, "pixels": check,
                      "flood_is_after_minus_shared": check["flood_recomputed"]
                      == check["flood_run_json"] == check["after_water"] - check["shared"]},
                     indent=1))
    if args.png is not None:
        render(result, after, before, args.png, bands=bands)
        print(f"figure: {args.png}")


if __name__ == "__main__":
    main()
