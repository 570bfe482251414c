"""A click on a raster with a water index selects its water body, joined across small gaps."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.segmentation.prompted_prior import select
from geofloodsam.tiles.growth import joined_body
from geofloodsam.tiles.work import Seed


def _fragments() -> np.ndarray:
    """Two pieces of one flood 4 px apart, and a pond 30 px away."""
    water = np.zeros((80, 100), bool)
    water[10:40, 10:40] = True
    water[10:40, 44:60] = True  # 4 px of dry between the two pieces
    water[70:78, 90:98] = True  # far away
    return water


@pytest.mark.parametrize(("gap", "pieces"), [(0, 1), (1, 1), (2, 2), (8, 2)])
def test_a_click_joins_fragments_within_the_gap(gap: int, pieces: int) -> None:
    water = _fragments()
    body = joined_body(water, np.array([[20.5, 20.5]]), gap)
    assert body[20, 20] and body[20, 50] == (pieces == 2)
    assert not body[74, 94]  # the far pond is not the click's
    assert not (body & ~water).any()  # never more than the water


def test_a_dry_click_beyond_the_gap_selects_nothing() -> None:
    water = _fragments()
    assert not joined_body(water, np.array([[5.5, 60.5]]), 2).any()
    assert joined_body(water, np.array([[9.5, 20.5]]), 2).any()  # 1 px beside the water


def test_select_keeps_the_joined_body(monkeypatch) -> None:
    water = _fragments()
    fused = np.where(water, 0.9, 0.1).astype(np.float32)
    seed = Seed(1, np.array([[20.5, 20.5]]), np.array([1]), propagate=True)
    monkeypatch.setattr("geofloodsam.segmentation.prompted_prior.JOIN_GAP_PIXELS", 0)
    _, one = select(fused, fused, seed, 0.5)
    monkeypatch.setattr("geofloodsam.segmentation.prompted_prior.JOIN_GAP_PIXELS", 4)
    _, joined = select(fused, fused, seed, 0.5)
    assert one.sum() == 30 * 30 and joined.sum() == 30 * 30 + 30 * 16
