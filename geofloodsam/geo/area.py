"""Areas and lengths on the ground: the one convention for m² in every output.

Every area geofloodsam reports (``area_m2`` of each polygon, the water area in ``run.json``,
the areas of ``evaluate-raster``) is *geodesic*: measured on the ellipsoid of the CRS's own
datum (:class:`pyproj.Geod`), so it is right for projected and geographic CRSs alike and the
same mask gives the same area wherever it is measured. A pixel's area is that of its four
corners as a ring, at the grid's centre column (north-up grids have equal-area rows).
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine

from geofloodsam.geo.transforms import pixel_to_world

#: metres per degree of latitude (used to turn metres into degrees)
METRES_PER_DEGREE = 111_320.0


def _geodesy(crs):
    """(pyproj.Geod on the CRS datum's ellipsoid, transform function to its lon/lat)."""
    import pyproj

    crs = pyproj.CRS.from_user_input(crs)
    geodetic = crs.geodetic_crs or pyproj.CRS.from_epsg(4326)
    ellipsoid = geodetic.ellipsoid
    geod = pyproj.Geod(a=ellipsoid.semi_major_metre, b=ellipsoid.semi_minor_metre)
    return geod, pyproj.Transformer.from_crs(crs, geodetic, always_xy=True).transform


def geodesic_areas(geoms, crs) -> np.ndarray:
    """Area in m² of each geometry (in ``crs``) on the ellipsoid of the CRS's datum."""
    if len(geoms) == 0:
        return np.zeros(0)
    geod, to_lonlat = _geodesy(crs)

    def lonlat(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(to_lonlat(coords[:, 0], coords[:, 1]))

    projected = shapely.transform(np.asarray(list(geoms), dtype=object), lonlat)
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in projected], np.float64)


def geodesic_ring_areas(xs: np.ndarray, ys: np.ndarray, crs) -> np.ndarray:
    """Area in m² of each closed ring ``xs[i], ys[i]`` (in ``crs``), as :func:`geodesic_areas`."""
    geod, to_lonlat = _geodesy(crs)
    lons, lats = to_lonlat(np.ravel(xs), np.ravel(ys))
    lons, lats = np.reshape(lons, np.shape(xs)), np.reshape(lats, np.shape(ys))
    return np.array(
        [abs(geod.polygon_area_perimeter(lo, la)[0]) for lo, la in zip(lons, lats, strict=True)],
        np.float64,
    )


def row_pixel_areas(transform: Affine, crs, width: int, y0: int, y1: int) -> np.ndarray:
    """Geodesic area (m²) of one pixel of each row ``y0..y1`` of a grid ``width`` wide."""
    col = width // 2
    rows = np.arange(y0, y1, dtype=np.float64)
    cols = np.array([col, col + 1, col + 1, col, col], dtype=np.float64)  # a closed ring
    xs, ys = pixel_to_world(transform, cols[None, :], rows[:, None] + [0, 0, 1, 1, 0])
    return geodesic_ring_areas(xs, ys, crs)


def metres_to_crs_units(metres: float, crs) -> float:
    """A length in metres as a tolerance in the CRS's horizontal units.

    Geographic CRSs: metres over the length of one degree of latitude. A degree of longitude
    is shorter, so the tolerance is never larger than asked in any direction.
    """
    import pyproj

    crs = pyproj.CRS.from_user_input(crs)
    if crs.is_geographic:
        return metres / METRES_PER_DEGREE
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return metres / (factor or 1.0)
