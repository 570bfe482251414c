"""Areas on the ground: geodesic in every CRS; lengths in CRS units; row pixel areas."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from geofloodsam.geo.area import geodesic_areas, metres_to_crs_units, row_pixel_areas


def test_geodesic_area_in_projected_and_geographic_crs() -> None:
    square = shapely.box(500000, 5000000, 501000, 5001000)  # 1 km² in UTM 33N, near CM
    utm = geodesic_areas([square], "EPSG:32633")[0]
    assert utm == pytest.approx(1e6, rel=1e-3)  # UTM scale factor 0.9996 at the CM
    lonlat = gpd.GeoSeries([square], crs="EPSG:32633").to_crs("EPSG:4326")
    wgs = geodesic_areas(list(lonlat), "EPSG:4326")[0]
    assert wgs == pytest.approx(utm, rel=1e-4)
    # a 0.01 deg cell at 60 N vs at the equator: radii of curvature M * N * cos(lat) of WGS84
    at60 = geodesic_areas([shapely.box(10, 60, 10.01, 60.01)], "EPSG:4326")[0]
    at0 = geodesic_areas([shapely.box(10, 0, 10.01, 0.01)], "EPSG:4326")[0]
    e2 = 0.00669437999014

    def mn(lat: float) -> float:
        s2 = np.sin(np.radians(lat)) ** 2
        return (1 - e2) / (1 - e2 * s2) ** 1.5 / (1 - e2 * s2) ** 0.5 * np.cos(np.radians(lat))

    assert at60 / at0 == pytest.approx(mn(60.005) / mn(0.005), rel=1e-3)


def test_simplify_tolerance_is_metres_in_every_crs() -> None:
    assert metres_to_crs_units(10, "EPSG:32633") == 10
    assert metres_to_crs_units(0.3048, "EPSG:2263") == pytest.approx(1.0, rel=1e-5)  # US feet
    assert metres_to_crs_units(111_320, "EPSG:4326") == pytest.approx(1.0)


@pytest.mark.parametrize("crs, transform", [
    ("EPSG:32633", Affine(10, 0, 500000, 0, -10, 5000000)),
    ("EPSG:4326", Affine(1e-4, 0, 15.0, 0, -1e-4, 45.0)),
])
def test_row_pixel_areas_are_the_geodesic_area_of_the_pixels(crs, transform) -> None:
    areas = row_pixel_areas(transform, crs, 5, 0, 3)
    for row, area in enumerate(areas):
        x0, y0 = transform * (2, row)
        x1, y1 = transform * (3, row + 1)
        box = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        assert area == pytest.approx(geodesic_areas([box], crs)[0], rel=1e-9)
