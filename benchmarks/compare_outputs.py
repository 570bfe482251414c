"""Compare the outputs of two ``segment`` runs: mask / probability COGs byte for byte, and
the GeoPackage polygons (geometry WKB, attributes, order).

    python benchmarks/compare_outputs.py DIR_A DIR_B [--pixels]

Every ``*_mask.tif``, ``*_prob.tif`` and ``*_flood.gpkg`` under DIR_A (recursively) is compared
with the file at the same relative path under DIR_B; prints one line per file and exits 1 if
any differs or is missing. (GeoPackages store write times, so their bytes always differ.)
With ``--pixels``, rasters count as the same when their pixels, CRS, transform and nodata
are (for comparing across a change of the files' styling, e.g. an added colour table).
"""

from __future__ import annotations

import sys
from pathlib import Path


def same_layer(a: Path, b: Path) -> bool:
    """True when both GeoPackages hold the same features, in the same order."""
    import geopandas as gpd

    fa, fb = gpd.read_file(a, layer="flood"), gpd.read_file(b, layer="flood")
    return (
        list(fa.columns) == list(fb.columns)
        and list(fa.geometry.to_wkb()) == list(fb.geometry.to_wkb())
        and fa.drop(columns="geometry").equals(fb.drop(columns="geometry"))
    )


def same_pixels(a: Path, b: Path) -> bool:
    """True when both rasters hold the same pixels on the same grid."""
    import numpy as np
    import rasterio

    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        grid_a = (ra.crs, ra.transform, ra.nodata, ra.shape)
        grid_b = (rb.crs, rb.transform, rb.nodata, rb.shape)
        return grid_a == grid_b and np.array_equal(ra.read(), rb.read())


def main() -> int:
    dir_a, dir_b = (Path(p) for p in sys.argv[1:3])
    pixels = "--pixels" in sys.argv[3:]
    files = sorted(
        p for pattern in ("*_mask.tif", "*_prob.tif", "*_flood.gpkg") for p in dir_a.rglob(pattern)
    )
    ok = bool(files)
    for a in files:
        b = dir_b / a.relative_to(dir_a)
        if not b.exists():
            same = False
        elif a.suffix == ".gpkg":
            same = same_layer(a, b)
        else:
            same = same_pixels(a, b) if pixels else a.read_bytes() == b.read_bytes()
        ok &= same
        print(f"{'same' if same else 'DIFFERENT'}  {a.relative_to(dir_a)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
