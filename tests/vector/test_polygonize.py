"""Mask -> polygons: vectorised strip by strip, dissolved across strips, areas, filters, GPKG."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import shapely.affinity
from affine import Affine
from rasterio import features
from scipy import ndimage

from geofloodsam.geo.area import geodesic_areas
from geofloodsam.vector.polygonize import (
    StripPolygonizer,
    polygons_to_frame,
    wet_runs,
    write_gpkg,
)


def blobs(height: int = 300, width: int = 260) -> tuple[np.ndarray, np.ndarray]:
    """A mask with a lake with an island (holding a pond), a river, diagonal pixels; and ids."""
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    lake = ((xx - 120) / 90) ** 2 + ((yy - 140) / 110) ** 2 <= 1
    island = ((xx - 120) / 30) ** 2 + ((yy - 140) / 40) ** 2 <= 1
    pond = ((xx - 120) / 8) ** 2 + ((yy - 140) / 8) ** 2 <= 1
    river = np.abs(xx - (235 + 12 * np.sin(yy / 20))) < 5
    water = (lake & ~island) | pond | river
    water[5, 5] = water[6, 6] = True  # diagonal neighbours: two 4-connected polygons
    ids = np.where(river, 2, np.where(water, 1, 0)).astype(np.int32)
    ids[200:, 215:] = np.where(river[200:, 215:], 3, 0)  # the river's lower part: object 3
    return water, ids


def run_strips(water: np.ndarray, ids: np.ndarray | None, strip: int, **kwargs) -> list:
    poly = StripPolygonizer(water.shape[1], **kwargs)
    for y0 in range(0, water.shape[0], strip):
        poly.add_strip(y0, water[y0 : y0 + strip], None if ids is None else ids[y0 : y0 + strip])
    return poly.polygons()


def rasterize(polys, shape) -> np.ndarray:
    shapes = [(p.geometry, 1) for p in polys]
    return features.rasterize(shapes, out_shape=shape, fill=0).astype(bool)


@pytest.mark.parametrize("strip", [7, 64, 100, 1000])
def test_strips_dissolve_into_the_same_polygons(strip: int) -> None:
    water, ids = blobs()
    polys = run_strips(water, ids, strip)
    whole = run_strips(water, ids, water.shape[0])
    n_components = ndimage.label(water)[1]  # 4-connectivity
    assert len(polys) == len(whole) == n_components
    np.testing.assert_array_equal(rasterize(polys, water.shape), water)
    key = sorted((round(p.geometry.area), p.object_index) for p in polys)
    assert key == sorted((round(p.geometry.area), p.object_index) for p in whole)
    for p in polys:
        assert p.geometry.is_valid and p.geometry.geom_type == "Polygon"
        assert p.geometry.area == p.pixels  # pixel units: area == pixel count
    # dissolved exactly: no vertex left on a strip boundary inside a straight edge
    lake = max(polys, key=lambda p: p.pixels)
    assert len(lake.geometry.interiors) == 1
    same = [p for p in whole if p.pixels == lake.pixels][0]
    assert shapely.equals(lake.geometry, same.geometry)
    n_vertices = len(shapely.get_coordinates(same.geometry))
    assert len(shapely.get_coordinates(lake.geometry)) == n_vertices


@pytest.mark.parametrize("strip", [7, 100])
def test_water_far_from_the_left_edge_keeps_its_place(strip: int) -> None:
    """Bands are traced only where they hold water: the polygons must not move or change."""
    water, ids = blobs()
    wide = np.pad(water, ((0, 0), (300, 200)))
    wide_ids = np.pad(ids, ((0, 0), (300, 200)))
    polys = run_strips(wide, wide_ids, strip)
    np.testing.assert_array_equal(rasterize(polys, wide.shape), wide)
    moved = sorted(
        (shapely.affinity.translate(p.geometry, 300, 0).wkb_hex, p.object_index, p.pixels)
        for p in run_strips(water, ids, strip)
    )
    assert sorted((p.geometry.wkb_hex, p.object_index, p.pixels) for p in polys) == moved


def test_wet_runs_split_at_wide_dry_gaps() -> None:
    wet = np.zeros(40, bool)
    wet[[2, 3, 5, 20, 21, 39]] = True
    assert wet_runs(wet, min_gap=3) == [(2, 6), (20, 22), (39, 40)]
    assert wet_runs(wet, min_gap=15) == [(2, 22), (39, 40)]  # 14 dry columns: one run
    assert wet_runs(wet, min_gap=100) == [(2, 40)]
    one_dry = [(2, 4), (5, 6), (20, 22), (39, 40)]  # any dry column splits
    assert wet_runs(wet, min_gap=0) == wet_runs(wet, min_gap=1) == one_dry
    assert wet_runs(np.zeros(5, bool)) == []


@pytest.mark.parametrize("strip", [7, 100])
@pytest.mark.parametrize("min_gap", [0, 1, 5, 64])
def test_tracing_wet_runs_apart_gives_the_full_width_result(strip: int, min_gap: int) -> None:
    """Runs traced apart: the same polygons, ids and order as one full-width labelling."""
    water, ids = blobs()
    dry = np.zeros((water.shape[0], 30), bool)
    wide = np.hstack([water, dry, water[::-1], dry[:, :3], water[:, ::-1]])
    wide_ids = np.hstack([ids, dry, ids[::-1] * 2, dry[:, :3], ids[:, ::-1]]).astype(np.int32)
    whole = run_strips(wide, wide_ids, strip, min_gap=10**9)  # one run: the full width
    split = run_strips(wide, wide_ids, strip, min_gap=min_gap)
    assert len(whole) == len(split) == ndimage.label(wide)[1]
    assert [(p.geometry.wkb, p.object_index, p.pixels) for p in split] == [
        (p.geometry.wkb, p.object_index, p.pixels) for p in whole
    ]


def test_object_id_is_the_majority_over_the_polygon() -> None:
    water, ids = blobs()
    polys = run_strips(water, ids, 50)
    river = [p for p in polys if p.geometry.bounds[0] > 200]
    assert len(river) == 1 and river[0].object_index == 2  # ids 2 and 3 met: the larger wins
    assert {p.object_index for p in polys} == {1, 2}
    assert {p.object_index for p in run_strips(water, None, 50)} == {0}


@pytest.mark.parametrize("crs", ["EPSG:32633", "EPSG:4326"])
def test_frame_attributes_filters_and_gpkg(tmp_path, crs: str) -> None:
    water, ids = blobs()
    polys = run_strips(water, ids, 64)
    if crs == "EPSG:4326":
        transform = Affine(1e-4, 0, 15.0, 0, -1e-4, 45.0)
        pixel_m2 = geodesic_areas([shapely.box(15.0, 45.0 - 1e-4, 15.0 + 1e-4, 45.0)], crs)[0]
    else:
        transform = Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0)
        pixel_m2 = geodesic_areas([shapely.box(500000, 4999990, 500010, 5000000)], crs)[0]
    attrs = {1: {"object_id": 11, "prompt_type": "point"}, 2: {"object_id": 12,
                                                                "prompt_type": "box"}}
    frame = polygons_to_frame(polys, transform, crs, attrs, "vit_t:pretrained")
    assert len(frame) == len(polys) and frame.crs == crs
    np.testing.assert_allclose(
        sorted(frame["area_m2"]), sorted(p.pixels * pixel_m2 for p in polys), rtol=2e-3
    )
    assert set(zip(frame["object_id"], frame["prompt_type"], strict=True)) == {
        (11, "point"), (12, "box")}
    big = polygons_to_frame(polys, transform, crs, attrs, "m", min_area=3 * pixel_m2)
    assert len(big) == len(polys) - 2  # the two single diagonal pixels are gone
    simple = polygons_to_frame(polys, transform, crs, attrs, "m", min_area=3 * pixel_m2,
                               simplify=15.0)
    n_big = shapely.get_num_coordinates(np.array(big.geometry)).sum()
    assert shapely.get_num_coordinates(np.array(simple.geometry)).sum() < n_big / 2
    assert simple.is_valid.all()
    assert simple["area_m2"].sum() == pytest.approx(big["area_m2"].sum(), rel=0.03)
    path = tmp_path / "f.gpkg"
    write_gpkg(simple, path)
    back = gpd.read_file(path, layer="flood")
    assert back.crs == crs and len(back) == len(simple)


def test_empty_layer_keeps_its_crs_and_columns(tmp_path) -> None:
    frame = polygons_to_frame([], Affine.identity(), "EPSG:32633")
    path = tmp_path / "e.gpkg"
    write_gpkg(frame, path)
    back = gpd.read_file(path, layer="flood")
    assert len(back) == 0 and back.crs == "EPSG:32633"
    assert {"area_m2", "object_id", "prompt_type", "model"} <= set(back.columns)
