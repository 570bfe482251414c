"""The tile store (:mod:`geofloodsam.tiles.store`): each object's probability per tile, kept
cropped on disk, merged by maximum, read back by window or at points."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.geo.boxes import Box
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.store import PROB_EPS, TileStore


@pytest.fixture
def grid() -> TileGrid:
    return TileGrid(200, 150, 100, 20)


def test_a_crop_is_stored_float16_and_read_back_with_zeros_around(tmp_path, grid) -> None:
    store = TileStore(tmp_path)
    tile = grid.tiles[0]
    crop = np.array([[0.25, 0.5], [0.75, 1.0]], np.float32)
    store.update_crop(tile, 7, 10, 20, crop)
    assert store.crop_box(tile, 7) == Box(20, 10, 22, 12) and 0 in store and len(store) == 1
    assert np.load(next(tmp_path.glob("*.npy"))).dtype == np.float16
    out = store.read(tile, 7, slice(9, 13), slice(19, 23))
    expected = np.zeros((4, 4), np.float32)
    expected[1:3, 1:3] = crop
    np.testing.assert_array_equal(out, expected)
    assert store.object_rows(7) == (tile.y0 + 10, tile.y0 + 12)


def test_a_later_decode_merges_by_maximum_over_both_crops(tmp_path, grid) -> None:
    store = TileStore(tmp_path, prob_dtype=np.float32)
    tile = grid.tiles[1]
    store.update_crop(tile, 1, 0, 0, np.full((2, 2), 0.5, np.float32))
    store.update_crop(tile, 1, 1, 1, np.full((2, 2), 0.75, np.float32))
    store.update_crop(tile, 1, 0, 0, np.zeros((0, 0), np.float32))  # found nothing this time
    assert store.crop_box(tile, 1) == Box(0, 0, 3, 3)
    np.testing.assert_array_equal(store.read(tile, 1, slice(0, 3), slice(0, 3)), [
        [0.5, 0.5, 0.0], [0.5, 0.75, 0.75], [0.0, 0.75, 0.75]])
    assert store.covering(1) == [1] and store.objects_in(tile) == [1]


def test_a_whole_tile_is_cropped_to_its_pixels_above_eps(tmp_path, grid) -> None:
    store = TileStore(tmp_path, prob_dtype=np.float32)
    tile = grid.tiles[2]
    prob = np.zeros((tile.height, tile.width), np.float32)
    prob[30:40, 5:9] = 0.9
    prob[50, 50] = PROB_EPS  # at eps: zero in the store
    store.update(tile, 3, prob)
    assert store.crop_box(tile, 3) == Box(5, 30, 9, 40)
    store.update(tile, 4, np.zeros_like(prob))  # decoded, nothing found: known, no crop
    assert store.objects == [3, 4] and store.crop_box(tile, 4) is None
    with pytest.raises(ValueError, match="tile 2"):
        store.update(tile, 5, prob[:10])


def test_prob_at_reads_one_object_or_the_highest_of_all(tmp_path, grid) -> None:
    store = TileStore(tmp_path, prob_dtype=np.float32)
    tile = grid.tiles[3]
    store.update_crop(tile, 1, 0, 0, np.full((4, 4), 0.25, np.float32))
    store.update_crop(tile, 2, 2, 2, np.full((4, 4), 0.75, np.float32))
    xs = tile.x0 + np.array([0.5, 3.5, 5.5, 50.5])  # full-raster pixels
    ys = tile.y0 + np.array([0.5, 3.5, 5.5, 50.5])
    np.testing.assert_array_equal(store.prob_at(tile, xs, ys), [0.25, 0.75, 0.75, 0.0])
    np.testing.assert_array_equal(store.prob_at(tile, xs, ys, obj=1), [0.25, 0.25, 0.0, 0.0])
    assert 9 not in store
