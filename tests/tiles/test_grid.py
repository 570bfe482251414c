"""The tile grid: flush with the raster edge, covering, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.errors import GeofloodsamError
from geofloodsam.tiles.grid import TileGrid, tile_starts

SIZES = [(1000, 777), (777, 1000), (256, 256), (100, 60), (1025, 300), (4096, 4096)]


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize(("tile_size", "overlap"), [(256, 64), (1024, 256), (300, 0)])
def test_grid_is_flush_and_covers(width: int, height: int, tile_size: int, overlap: int) -> None:
    grid = TileGrid(width, height, tile_size, overlap)
    seen = np.zeros((height, width), dtype=np.int32)
    for tile in grid:
        assert 0 <= tile.x0 < tile.x1 <= width and 0 <= tile.y0 < tile.y1 <= height
        assert tile.width == min(tile_size, width) and tile.height == min(tile_size, height)
        seen[tile.y0 : tile.y1, tile.x0 : tile.x1] += 1
    assert seen.min() >= 1  # covers every pixel
    assert max(t.x1 for t in grid) == width and max(t.y1 for t in grid) == height  # flush
    # consecutive tiles are one stride apart except the last, pulled back to the edge
    for starts, length in ((grid.xs, width), (grid.ys, height)):
        steps = np.diff(starts)
        assert (steps[:-1] == grid.stride).all() if len(steps) > 1 else True
        assert (steps > 0).all() and (steps <= grid.stride).all()
        assert starts[-1] == max(0, length - tile_size)


def test_grid_is_deterministic_and_row_major() -> None:
    a, b = TileGrid(1000, 777, 256, 64), TileGrid(1000, 777, 256, 64)
    assert a.tiles == b.tiles
    assert [t.index for t in a] == list(range(len(a)))
    assert [(t.row, t.col) for t in a] == sorted((t.row, t.col) for t in a)
    assert tile_starts(1000, 256, 192) == [0, 192, 384, 576, 744]


def test_small_raster_gets_one_smaller_tile() -> None:
    grid = TileGrid(100, 60, 1024, 256)
    assert len(grid) == 1
    (tile,) = grid.tiles
    assert (tile.x0, tile.y0, tile.x1, tile.y1) == (0, 0, 100, 60)


def test_neighbours_and_cores_partition_the_raster() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    inner = grid.tile(1, 1)
    nb = grid.neighbours(inner)
    assert set(nb) == {"left", "right", "top", "bottom"}
    assert nb["right"].x0 < inner.x1  # they overlap
    assert set(grid.neighbours(grid.tile(0, 0))) == {"right", "bottom"}
    area = 0.0
    for tile in grid:
        x0, y0, x1, y1 = grid.core(tile)
        assert tile.x0 <= x0 < x1 <= tile.x1 and tile.y0 <= y0 < y1 <= tile.y1
        area += (x1 - x0) * (y1 - y0)
    assert area == pytest.approx(1000 * 777)


def test_best_tile_is_the_most_central() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    x, y = 200.5, 10.5  # in tiles (0,0) [0,256) and (0,1) [192,448)
    best = grid.best_tile(x, y)
    assert (best.row, best.col) == (0, 0)
    assert grid.best_tile(300.5, 10.5).col == 1
    assert grid.best_tile(-5.0, 9999.0).row == grid.n_rows - 1  # clamped onto the raster


@pytest.mark.parametrize(("tile_size", "overlap"), [(16, 0), (256, 256), (256, -1)])
def test_bad_tiling_parameters(tile_size: int, overlap: int) -> None:
    with pytest.raises(GeofloodsamError, match="tile-size|overlap"):
        TileGrid(1000, 777, tile_size, overlap)
