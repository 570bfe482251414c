"""The "before" water on AFTER's grid, one window at a time; footprints checked first.

Three sources give the same thing for a window of AFTER's grid, ``(water, valid)`` bool
arrays, so the scene is never read whole:

- BEFORE's water mask (``segment``'s COG, 1 water / 0 dry / 255 nodata, on its own grid):
  a GDAL warped VRT onto AFTER's grid, nearest neighbour (:class:`WarpedMask`);
- a reference raster (e.g. a surface-water occurrence layer in percent): the same warped
  read, water where the value is at least ``minimum`` (:class:`WarpedMask` too);
- reference polygons (rivers and lakes): reprojected once, rasterized per window
  (:class:`PolygonWater`); inside AFTER's footprint every pixel is valid.

Pixels that the warped read leaves empty (outside the source, or its nodata) are not valid,
so the classes there are nodata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from geofloodsam.errors import GeofloodsamError

VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gml", ".kml", ".sqlite")


@dataclass(frozen=True)
class Grid:
    """AFTER's grid: what every window is cut from."""

    crs: Any
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, ds) -> Grid:
        """The grid of an open rasterio dataset."""
        return cls(ds.crs, ds.transform, ds.width, ds.height)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS."""
        from rasterio.transform import array_bounds

        return tuple(array_bounds(self.height, self.width, self.transform))


def overlap_fraction(grid: Grid, crs, bounds, name: str, what: str) -> float:
    """The fraction of AFTER's bounding box covered by ``bounds`` (in ``crs``); an error
    naming ``what`` when they do not overlap."""
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(crs, grid.crs, *bounds, densify_pts=21)
    gl, gb, gr, gt = grid.bounds
    dx = min(right, gr) - max(left, gl)
    dy = min(top, gt) - max(bottom, gb)
    if not (np.isfinite([dx, dy]).all() and dx > 0 and dy > 0):
        raise GeofloodsamError(
            f"{what} {name} does not overlap AFTER: give a {what} of the same area (footprints "
            "compared in AFTER's CRS)."
        )
    return float(dx * dy / ((gr - gl) * (gt - gb)))


class WarpedMask:
    """A raster read onto AFTER's grid (nearest): water where ``value >= minimum``
    (``minimum`` None: water where the value is 1, as in ``segment``'s masks)."""

    def __init__(self, path: str | Path, grid: Grid, minimum: float | None = None,
                 what: str = "BEFORE") -> None:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.path = Path(path)
        self.minimum = minimum
        self._ds = open_raster(self.path, what)
        self.same_grid = (
            self._ds.crs == grid.crs and self._ds.transform.almost_equals(grid.transform)
            and (self._ds.width, self._ds.height) == (grid.width, grid.height)
        )
        self.overlap = overlap_fraction(grid, self._ds.crs, self._ds.bounds, self.path.name, what)
        options = {"crs": grid.crs, "transform": grid.transform, "width": grid.width,
                   "height": grid.height, "resampling": Resampling.nearest, "add_alpha": True}
        if self._ds.nodata is not None:
            options["src_nodata"] = self._ds.nodata
        try:
            self._vrt = WarpedVRT(self._ds, **options)
        except rasterio.errors.RasterioError:
            self._ds.close()
            raise

    def read(self, window) -> tuple[np.ndarray, np.ndarray]:
        """(water, valid) bool arrays of ``window`` of AFTER's grid."""
        values = self._vrt.read(1, window=window)
        valid = self._vrt.read_masks(1, window=window) > 0
        if np.issubdtype(values.dtype, np.floating):
            valid &= ~np.isnan(values)
        water = values == 1 if self.minimum is None else values >= self.minimum
        return water & valid, valid

    def record(self) -> dict[str, Any]:
        """How the raster was aligned (for run.json)."""
        return {"source": str(self.path.resolve()), "kind": "raster", "crs": str(self._ds.crs),
                "resolution": [abs(self._ds.transform.a), abs(self._ds.transform.e)],
                "same_grid": self.same_grid, "resampling": "nearest",
                "read": "GDAL warped VRT onto AFTER's grid, window by window",
                "after_bbox_covered": round(self.overlap, 6)}

    def close(self) -> None:
        """Close the VRT and the raster."""
        self._vrt.close()
        self._ds.close()


def open_raster(path: Path, what: str):
    """An open rasterio dataset with a CRS, or a one-line error."""
    import rasterio

    if not path.is_file():
        raise GeofloodsamError(f"{what} {path} does not exist: check the path.")
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioError as exc:
        raise GeofloodsamError(
            f"cannot read {what} {path} ({str(exc).splitlines()[0][:120]}): give a GeoTIFF or "
            "another GDAL raster."
        ) from None
    if ds.crs is None:
        ds.close()
        raise GeofloodsamError(
            f"{what} {path} has no CRS: it cannot be aligned with AFTER; georeference it first "
            "(e.g. gdal_edit.py -a_srs EPSG:XXXX)."
        )
    return ds


class PolygonWater:
    """Reference water polygons (any CRS) rasterized onto AFTER's grid window by window."""

    def __init__(self, path: str | Path, grid: Grid, layer: str | None = None) -> None:
        import geopandas as gpd
        import shapely
        from rasterio.warp import transform_bounds

        self.path = Path(path)
        self.grid = grid
        what = "REFERENCE_WATER"
        try:
            info = gpd.read_file(self.path, layer=layer, rows=0)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
            raise GeofloodsamError(
                f"cannot read {what} {self.path} ({str(exc).splitlines()[0][:120]}): give a "
                "GeoTIFF or a vector file of water polygons."
            ) from None
        if info.crs is None:
            raise GeofloodsamError(
                f"{what} {self.path} has no CRS: give a file with one (e.g. a GeoPackage)."
            )
        bbox = transform_bounds(grid.crs, info.crs, *grid.bounds, densify_pts=21)
        frame = gpd.read_file(self.path, layer=layer, bbox=bbox).to_crs(grid.crs)
        geoms = frame.geometry.values
        polygonal = shapely.get_type_id(geoms) >= 0
        polygonal &= np.isin(shapely.get_type_id(geoms), (3, 6))  # Polygon, MultiPolygon
        footprint = shapely.box(*grid.bounds)
        geoms = geoms[polygonal]
        geoms = geoms[shapely.intersects(geoms, footprint)] if len(geoms) else geoms
        if len(geoms) == 0:
            raise GeofloodsamError(
                f"{what} {self.path} has no water polygon inside AFTER ({len(frame)} feature(s) "
                "near it, none a polygon over the scene): give polygons of this area."
            )
        self.geoms = np.asarray(shapely.make_valid(np.asarray(geoms, dtype=object)))
        self.tree = shapely.STRtree(self.geoms)
        self.source_crs = str(info.crs)

    def read(self, window) -> tuple[np.ndarray, np.ndarray]:
        """(water, valid) of ``window``: water inside a polygon (pixel centres)."""
        import shapely
        from rasterio import features
        from rasterio.windows import bounds as window_bounds
        from rasterio.windows import transform as window_transform

        shape = (int(window.height), int(window.width))
        box = shapely.box(*window_bounds(window, self.grid.transform))
        hits = self.geoms[self.tree.query(box, predicate="intersects")]
        water = np.zeros(shape, bool)
        if len(hits):
            water = features.rasterize(
                [(g, 1) for g in hits], out_shape=shape,
                transform=window_transform(window, self.grid.transform), fill=0, dtype="uint8",
            ).astype(bool)
        return water, np.ones(shape, bool)

    def record(self) -> dict[str, Any]:
        """How the polygons were aligned (for run.json)."""
        return {"source": str(self.path.resolve()), "kind": "polygons", "crs": self.source_crs,
                "polygons": len(self.geoms), "read": "reprojected to AFTER's CRS, rasterized "
                "window by window (pixel centres inside)"}

    def close(self) -> None:
        """Nothing to close."""


def is_vector(path: str | Path) -> bool:
    """Whether ``path`` names a vector file (by its suffix)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES
