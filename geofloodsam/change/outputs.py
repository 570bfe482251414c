"""Writing ``flood``'s outputs: the class COG, the class polygons and their areas.

The classes arrive one row strip at a time (:func:`write_classes`): each strip is written to
a tiled GeoTIFF, feeds one polygonizer per class and adds up each class's geodesic area;
overviews (nearest) are added and GDAL's COG driver copies it, colour table included. Every
file is written in the work folder; the pipeline renames them all at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from geofloodsam.change.align import Grid
from geofloodsam.change.classes import NAMES, NODATA, POLYGON_CLASSES
from geofloodsam.geo.area import row_pixel_areas
from geofloodsam.qgis import style as qgis_style
from geofloodsam.stitch.blend import BLOCK, overview_factors
from geofloodsam.vector.polygonize import StripPolygonizer, polygons_to_frame


class ClassTally:
    """Pixels, geodesic areas (m²) and polygons of each class, strip by strip."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.pixels = dict.fromkeys((*NAMES, NODATA), 0)
        self.area_m2 = dict.fromkeys(NAMES, 0.0)
        self.polygonizers = {v: StripPolygonizer(grid.width) for v in POLYGON_CLASSES}

    def add(self, y0: int, classes: np.ndarray) -> None:
        """Add rows ``[y0, y0 + h)`` of the class raster."""
        areas = row_pixel_areas(self.grid.transform, self.grid.crs, self.grid.width, y0,
                                y0 + classes.shape[0])
        for value in self.pixels:
            hit = classes == value
            per_row = np.count_nonzero(hit, axis=1)
            self.pixels[value] += int(per_row.sum())
            if value in self.area_m2:
                self.area_m2[value] += float(per_row @ areas)
            if value in self.polygonizers:
                self.polygonizers[value].add_strip(y0, hit)

    def record(self) -> dict[str, Any]:
        """Pixels and areas per class name (for run.json)."""
        out = {NAMES[v]: {"pixels": self.pixels[v], "area_m2": self.area_m2[v]} for v in NAMES}
        out["nodata"] = {"pixels": self.pixels[NODATA]}
        return out


def write_classes(
    grid: Grid, strips: Iterable[tuple[Any, np.ndarray]], directory: Path, tally: ClassTally
) -> Path:
    """Write the (window, classes) strips, top to bottom, as ``directory/classes.tif`` (COG)."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    plain = directory / "classes_plain.tif"
    profile = {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1,
        "dtype": "uint8", "crs": grid.crs, "transform": grid.transform, "nodata": NODATA,
        "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "zstd",
        "zstd_level": 1, "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(plain, "w", **profile) as ds:
        qgis_style.style_classes(ds)
        for window, classes in strips:
            ds.write(classes, 1, window=window)
            tally.add(int(window.row_off), classes)
    factors = overview_factors(grid.width, grid.height)
    if factors:
        with rasterio.open(plain, "r+") as ds:
            ds.build_overviews(factors, Resampling.nearest)
    cog = directory / "classes.tif"
    rasterio.shutil.copy(plain, cog, driver="COG", compress="deflate", blocksize=BLOCK,
                         BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
    plain.unlink()
    return cog


def write_class_polygons(
    tally: ClassTally, path: Path, model: str, min_area: float = 0.0, simplify: float = 0.0
) -> dict[str, int]:
    """Write one GeoPackage 1.2 layer per class (flood, permanent_water, receded), each with
    its default style in the class's colour; return the polygons per layer."""
    counts = {}
    for value, layer in POLYGON_CLASSES.items():
        frame = polygons_to_frame(
            tally.polygonizers[value].polygons(), tally.grid.transform, tally.grid.crs, None,
            model, min_area, simplify,
        ).drop(columns=["object_id", "prompt_type"])
        frame.to_file(path, layer=layer, driver="GPKG", engine="pyogrio",
                      geometry_type="Polygon", dataset_options=qgis_style.GPKG_OPTIONS)
        rgba = qgis_style.CHANGE_CLASSES[value][1]
        outline = tuple(int(c * 0.7) for c in rgba[:3])
        qgis_style.add_gpkg_style(path, layer, fill=(*rgba[:3], 130), outline=outline)
        counts[layer] = len(frame)
    return counts
