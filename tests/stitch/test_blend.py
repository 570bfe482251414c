"""Stitching: blend weights and the row-strip blending of an on-disk tile store."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.geo.boxes import Box
from geofloodsam.stitch.blend import (
    WEIGHT_FLOOR,
    blend_strip,
    iter_strips,
    ramp,
    tile_weights,
)
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.store import TileStore


def smooth_field(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    return (0.5 + 0.45 * np.sin(xx / 97.0) * np.cos(yy / 61.0)).astype(np.float32)


def split(grid: TileGrid, field: np.ndarray, store: TileStore, obj: int = 1) -> None:
    for tile in grid:
        store.update(tile, obj, field[tile.y0 : tile.y1, tile.x0 : tile.x1])


def blend_all(grid: TileGrid, store: TileStore, strip_height: int) -> tuple[np.ndarray, np.ndarray]:
    strips = list(iter_strips(grid, store, strip_height))
    assert [b.y0 for b in strips] == list(range(0, grid.height, strip_height))
    return np.concatenate([b.prob for b in strips]), np.concatenate([b.covered for b in strips])


@pytest.mark.parametrize("field", ["constant", "smooth"])
@pytest.mark.parametrize(
    ("width", "height", "tile_size", "overlap", "strip_height"),
    [(1000, 777, 256, 64, 100), (777, 1000, 256, 100, 512), (300, 200, 1024, 256, 64)],
)
def test_round_trip(tmp_path, field, width, height, tile_size, overlap, strip_height) -> None:
    grid = TileGrid(width, height, tile_size, overlap)
    data = smooth_field(width, height)
    if field == "constant":
        data = np.full((height, width), 0.7, np.float32)
    store = TileStore(tmp_path, prob_dtype=np.float32)
    split(grid, data, store)
    prob, covered = blend_all(grid, store, strip_height)
    assert covered.all()
    np.testing.assert_allclose(prob, data, rtol=0, atol=1e-6)


def test_round_trip_float16_store(tmp_path) -> None:
    grid = TileGrid(1000, 777, 256, 64)
    data = smooth_field(1000, 777)
    store = TileStore(tmp_path)  # default: float16 on disk
    split(grid, data, store)
    prob, _ = blend_all(grid, store, 256)
    np.testing.assert_allclose(prob, data, rtol=0, atol=1e-3)


def test_ramp_tapers_only_towards_neighbours() -> None:
    flat = ramp(10, 0, 0)
    assert (flat == 1).all()
    w = ramp(10, 4, 0)
    assert w[0] < w[1] < w[2] < w[3] and (w[4:] == 1).all()
    assert (ramp(10, 4, 4) + ramp(10, 4, 4)[::-1] > 0).all()
    # two opposite ramps over the same overlap sum to one
    np.testing.assert_allclose(ramp(8, 0, 4)[4:] + ramp(8, 4, 0)[:4], 1.0, atol=1e-6)


def test_weights_are_flat_at_the_raster_border_and_never_zero() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    corner = tile_weights(grid, grid.tile(0, 0))
    assert corner[0, 0] == 1 and corner[0, :150].min() == 1 and corner[:150, 0].min() == 1
    assert corner[-1, -1] < 0.01  # tapered towards the interior corner
    for tile in grid:
        w = tile_weights(grid, tile)
        assert w.min() >= WEIGHT_FLOOR and w.max() <= 1


def test_a_crop_box_names_columns_x_and_rows_y(tmp_path) -> None:
    """A wide crop off the tile's corner: its box, rows and columns are not swapped anywhere
    (store, merge, read, blend)."""
    grid = TileGrid(600, 300, 256, 64)
    store = TileStore(tmp_path, prob_dtype=np.float32)
    tile = grid.tile(0, 1)
    prob = np.zeros((tile.height, tile.width), np.float32)
    prob[5:8, 20:60] = 0.9  # 3 rows, 40 columns
    store.update(tile, 1, prob)
    assert store.crop_box(tile, 1) == Box(x0=20, y0=5, x1=60, y1=8)
    more = np.zeros_like(prob)
    more[30:31, 10:12] = 0.7  # merged: the union of both crops
    store.update(tile, 1, more)
    assert store.crop_box(tile, 1) == Box(x0=10, y0=5, x1=60, y1=31)
    assert np.array_equal(store.read(tile, 1, slice(0, tile.height), slice(0, tile.width)),
                          np.maximum(prob, more))
    strip = blend_strip(grid, store, 0, grid.height)
    assert (strip.x0, strip.x1) == (tile.x0 + 10, tile.x0 + 60)
    assert strip.prob[6, tile.x0 + 30] == pytest.approx(0.9) and strip.prob[6, tile.x0 + 5] == 0
    assert strip.prob[30, tile.x0 + 11] == pytest.approx(0.7) and strip.prob[31, tile.x0 + 11] == 0
    assert strip.covered[: tile.y1, tile.x0 : tile.x1].all()
    assert not strip.covered[:, : tile.x0].any() and not strip.covered[tile.y1 :].any()


def test_uncovered_pixels_and_merge_by_maximum(tmp_path) -> None:
    grid = TileGrid(600, 300, 256, 64)
    store = TileStore(tmp_path, prob_dtype=np.float32)
    tile = grid.tile(0, 0)
    low = np.full((tile.height, tile.width), 0.2, np.float32)
    high = np.zeros_like(low)
    high[:10, :10] = 0.9
    store.update(tile, 1, low)
    store.update(tile, 2, high)  # another object in the same tile
    store.update(tile, 1, high * 0.5)  # object 1 again (a later wave): merged by maximum
    assert store.crop_box(tile, 2) == Box(x0=0, y0=0, x1=10, y1=10)  # stored cropped
    strip = blend_strip(grid, store, 0, grid.height)
    assert (strip.x0, strip.x1) == (0, tile.x1)  # the objects' columns
    assert strip.covered[: tile.y1, : tile.x1].all() and not strip.covered[:, tile.x1 :].any()
    assert (strip.prob[:, tile.x1 :] == 0).all() and (strip.ids[:, tile.x1 :] == 0).all()
    np.testing.assert_allclose(strip.prob[:10, :10], 0.9)
    np.testing.assert_allclose(strip.prob[20 : tile.y1, 20 : tile.x1], 0.2, rtol=1e-6)
    assert (strip.ids[:10, :10] == 2).all() and (strip.ids[20 : tile.y1, 20 : tile.x1] == 1).all()
    values = store.prob_at(tile, np.array([5.5, 100.5]), np.array([5.5, 100.5]))
    np.testing.assert_allclose(values, [0.9, 0.2], rtol=1e-6)


def test_strip_extent_bounds_the_objects(tmp_path) -> None:
    grid = TileGrid(900, 300, 256, 64)
    store = TileStore(tmp_path, prob_dtype=np.float32)
    assert blend_strip(grid, store, 0, 100).x0 == blend_strip(grid, store, 0, 100).x1  # nothing
    tile = grid.tile(0, 2)
    prob = np.zeros((tile.height, tile.width), np.float32)
    prob[50:60, 30:90] = 0.8
    store.update(tile, 1, prob)
    strip = blend_strip(grid, store, 0, 100)
    assert (strip.x0, strip.x1) == (tile.x0 + 30, tile.x0 + 90)
    outside = np.ones(strip.prob.shape, bool)
    outside[:, strip.x0 : strip.x1] = False
    assert not strip.prob[outside].any() and not strip.ids[outside].any()
    assert strip.covered[:, tile.x0 : tile.x1].all()  # the tile covers more than its object
    assert blend_strip(grid, store, 100, 200).x0 == blend_strip(grid, store, 100, 200).x1


def test_a_tile_decoded_for_other_objects_does_not_erase_an_object(tmp_path) -> None:
    """Object 1 seen by the left tile only; the right tile decoded object 2 elsewhere."""
    grid = TileGrid(448, 256, 256, 64)
    left, right = grid.tile(0, 0), grid.tile(0, 1)
    store = TileStore(tmp_path, prob_dtype=np.float32)
    lake = np.zeros((256, 256), np.float32)
    lake[100:150, 150:250] = 1.0  # reaches into the overlap [192, 256)
    store.update(left, 1, lake)
    other = np.zeros((256, 256), np.float32)
    other[0:20, 200:250] = 1.0
    store.update(right, 2, other)
    strip = blend_strip(grid, store, 0, 256)
    np.testing.assert_allclose(strip.prob[100:150, 150:250], 1.0)  # not faded by the right tile
    assert (strip.ids[100:150, 150:250] == 1).all()
    np.testing.assert_allclose(strip.prob[0:20, right.x0 + 200 : right.x0 + 250], 1.0)


def test_objects_blend_only_over_the_tiles_that_decoded_them(tmp_path) -> None:
    grid = TileGrid(448, 256, 256, 64)
    left, right = grid.tile(0, 0), grid.tile(0, 1)
    store = TileStore(tmp_path, prob_dtype=np.float32)
    store.update(left, 1, np.full((256, 256), 0.8, np.float32))
    store.update(right, 1, np.full((256, 256), 0.4, np.float32))
    strip = blend_strip(grid, store, 0, 256)
    overlap = strip.prob[:, right.x0 : left.x1]
    assert overlap[:, 0].mean() > overlap[:, -1].mean()  # tapering from left to right tile
    np.testing.assert_allclose(strip.prob[:, : right.x0], 0.8, rtol=1e-6)
    np.testing.assert_allclose(strip.prob[:, left.x1 :], 0.4, rtol=1e-6)
