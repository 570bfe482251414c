"""The tile engine's seeding of user prompts and the embedding keeper (split from the
pipeline tests)."""

from __future__ import annotations

import numpy as np
import torch

from geofloodsam.model.sam import Embedding
from geofloodsam.tiles.engine import box_seeds, point_seeds
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.work import RunEmbeddings


def test_point_seeds_go_to_the_most_central_tile() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    seeds = point_seeds(grid, 1, np.array([[200.5, 10.5], [600.5, 600.5], [210.5, 12.5]]),
                        np.array([1, 1, 0]))
    assert sorted(seeds) == sorted({grid.best_tile(200.5, 10.5).index,
                                    grid.best_tile(600.5, 600.5).index})
    first = seeds[grid.best_tile(200.5, 10.5).index]
    assert first.labels.tolist() == [1, 0]  # the negative point goes with the tile holding it
    assert first.points.tolist() == [[200.5, 10.5], [210.5, 12.5]]  # tile (0, 0): local == full


def test_a_box_larger_than_a_tile_is_split_into_clipped_tile_boxes() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    small = box_seeds(grid, 1, np.array([210.0, 220.0, 300.0, 330.0]))
    assert len(small) == 1  # fits in one tile: one box
    big = np.array([50.0, 40.0, 700.0, 500.0])
    seeds = box_seeds(grid, 2, big)
    assert len(seeds) > 4
    covered = np.zeros((777, 1000), bool)
    for index, seed in seeds.items():
        tile = grid.tiles[index]
        x0, y0, x1, y1 = seed.box + np.array([tile.x0, tile.y0, tile.x0, tile.y0])
        assert tile.x0 <= x0 < x1 <= tile.x1 and tile.y0 <= y0 < y1 <= tile.y1  # clipped
        covered[int(y0) : int(y1), int(x0) : int(x1)] = True
    assert covered[40:500, 50:700].all() and covered.sum() == 460 * 650  # exactly the box


def test_embedding_keeper_spills_beyond_its_cap(tmp_path) -> None:
    keeper = RunEmbeddings(tmp_path / "emb", max_bytes=3000)
    embs = {i: Embedding(torch.rand(4, 16, 16), (100, 90), (1024, 922)) for i in range(3)}
    for i, emb in embs.items():
        keeper.put(i, emb)
    assert len(list((tmp_path / "emb").glob("*.pt"))) == 2  # 2048 bytes each: one in memory
    for i, emb in embs.items():
        back = keeper.get(i)
        assert i in keeper and back.original_size == (100, 90) and back.input_size == (1024, 922)
        torch.testing.assert_close(back.features, emb.features, atol=1e-3, rtol=1e-3)
