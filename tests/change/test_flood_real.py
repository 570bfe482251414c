"""``flood`` with the real MobileSAM: NAIP dates to the pixel, Dask identical, flat memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from geofloodsam.change.align import Grid, WarpedMask
from geofloodsam.change.outputs import ClassTally, write_classes
from geofloodsam.change.pipeline import _strips, flood

NAIP = "data/geo/naip-north-dakota/m_4709963_se_14_1_{}.tif"


@pytest.mark.slow
@pytest.mark.parametrize(("after", "before"), [("20100629", "20090818")])
def test_naip_flood_is_after_water_minus_shared_water_to_the_pixel(shared, tmp_path, after,
                                                                   before):
    """BEFORE's saved mask reprojected here (rasterio.warp, not the command's warped VRT)."""
    res = flood(shared(NAIP.format(after)), shared(NAIP.format(before)), outdir=tmp_path,
                save_water=True, quiet=True, threads=1)
    with rasterio.open(res.water_paths["after"]) as a:
        water_a = a.read(1)
        water_b = np.full(water_a.shape, 255, np.uint8)
        with rasterio.open(res.water_paths["before"]) as b:
            assert b.transform != a.transform  # the grids are one row apart
            reproject(rasterio.band(b, 1), water_b, dst_transform=a.transform, dst_crs=a.crs,
                      dst_nodata=255, resampling=Resampling.nearest)
    valid = (water_a != 255) & (water_b != 255)
    after_water = (water_a == 1) & valid
    shared_water = after_water & (water_b == 1)
    classes = res.record["classes"]
    assert classes["flood"]["pixels"] == int(after_water.sum() - shared_water.sum())
    assert classes["permanent_water"]["pixels"] == int(shared_water.sum())
    assert classes["nodata"]["pixels"] == int((~valid).sum())
    assert res.record["after"]["sensor"]["sensor"] == res.record["before"]["sensor"]["sensor"]


@pytest.mark.slow
def test_dask_gives_the_same_outputs(tmp_path):
    import geopandas as gpd

    from geofloodsam.datasets.sample_scenes import river_scene

    after = river_scene(tmp_path / "s", 700, 600, seed=4, stage="after").image
    before = river_scene(tmp_path / "s", 700, 600, seed=4, stage="before").image
    common = {"tile_size": 512, "overlap": 128, "threads": 1, "quiet": True, "runtime": "torch"}
    here = flood(after, before, outdir=tmp_path / "here", **common)
    dask = flood(after, before, outdir=tmp_path / "dask", workers=1, **common)
    assert dask.record["after"]["executor"]["kind"] == "dask"
    with rasterio.open(here.classes_path) as a, rasterio.open(dask.classes_path) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
    for layer in ("flood", "permanent_water", "receded"):
        one = gpd.read_file(here.gpkg_path, layer=layer)
        two = gpd.read_file(dask.gpkg_path, layer=layer)
        assert list(one.geometry.to_wkb()) == list(two.geometry.to_wkb())
    assert here.record["classes"] == dask.record["classes"]


def _mask(path: Path, height: int, shift: int = 0, width: int = 8192) -> Path:
    """A water mask of 32 rectangles scaled with the scene (the same polygons at every size;
    written in blocks: no full array here)."""
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8",
                   crs="EPSG:32633", nodata=255, tiled=True, blockxsize=256, blockysize=256,
                   transform=rasterio.transform.from_origin(500000, 4000000 + shift, 1, 1),
                   compress="deflate")
    with rasterio.open(path, "w", **profile) as ds:
        for y0 in range(0, height, 256):
            yy, xx = np.mgrid[y0:y0 + 256, 0:width]
            ds.write((((xx // (width // 8)) + (yy // (height // 4))) % 2 == 0)
                     .astype(np.uint8)[None], window=rasterio.windows.Window(0, y0, width, 256))
    return path


def _combine_peak(tmp_path: Path, height: int) -> int:
    after = _mask(tmp_path / f"a{height}.tif", height)
    before = _mask(tmp_path / f"b{height}.tif", height, shift=3)
    with rasterio.open(after) as ds:
        grid = Grid.of(ds)
    source = WarpedMask(before, grid)
    tracemalloc.start()
    try:
        tally = ClassTally(grid)
        write_classes(grid, _strips(grid, after, source, None), tmp_path, tally)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        source.close()


@pytest.mark.slow
def test_combining_memory_is_flat_in_scene_size(tmp_path):
    """Peak traced memory (numpy and Python) of the combine (read, classify, write,
    polygonize) of 8192 x 1024 and 8192 x 4096 px (4x the pixels, the same polygons): within
    1.5x. (Below 8192 px wide the row strip is narrower: its 4 Mpx cap is reached there.)"""
    small, large = _combine_peak(tmp_path, 1024), _combine_peak(tmp_path, 4096)
    assert large < 1.5 * small, (small, large)
