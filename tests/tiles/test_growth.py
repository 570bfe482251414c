"""Growth of prompted objects: candidate choice, appearance, seeds into neighbour tiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.growth import (
    COLOUR_TOLERANCE,
    Appearance,
    choose_box_candidate,
    choose_point_candidate,
    dilated,
    edge_seeds,
    evidence_water,
    of_its_colour,
    promptless_body,
    promptless_logits,
)


def two_fields() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 100x100 RGB tile: dark water left of x=40, a bright field right of it; a click."""
    rng = np.random.default_rng(0)
    rgb = np.empty((100, 100, 3), np.uint8)
    rgb[:, :40] = 30 + rng.integers(0, 8, (100, 40, 3))
    rgb[:, 40:] = 150 + rng.integers(0, 8, (100, 60, 3))
    water = np.zeros((100, 100), bool)
    water[:, :40] = True
    return rgb, water, np.array([[20.5, 50.5]])


def test_appearance_takes_the_colours_at_the_click() -> None:
    rgb, water, click = two_fields()
    look = Appearance.at(rgb, click)
    assert look.colours.shape == (1, 3) and look.tolerance >= COLOUR_TOLERANCE
    np.testing.assert_array_equal(look.consistent(rgb), water)
    assert Appearance.at(rgb, np.array([[500.0, 5.0]])) is None  # outside the tile


def test_the_candidate_of_the_clicked_colour_wins_over_a_higher_predicted_iou() -> None:
    rgb, water, click = two_fields()
    everything = np.ones_like(water)  # water and field: SAM's most confident candidate
    part = water.copy()
    part[:, :20] = False  # half the water, still all of its colour
    masks = np.stack([part, water, everything])
    consistent = Appearance.at(rgb, click).consistent(rgb)
    assert choose_point_candidate(masks, np.array([0.2, 0.3, 0.9]), click, consistent) == 1
    # no colours known: predicted IoU decides, as before
    assert choose_point_candidate(masks, np.array([0.2, 0.3, 0.9]), click, None) == 2


def test_when_no_candidate_is_consistent_the_most_consistent_wins() -> None:
    rgb, water, click = two_fields()
    consistent = Appearance.at(rgb, click).consistent(rgb)
    a = np.ones_like(water)  # 40 % water
    b = np.zeros_like(water)
    b[:, 10:] = True  # 30/90 water
    assert choose_point_candidate(np.stack([b, a]), np.array([0.9, 0.1]), click, consistent) == 1


def test_a_box_keeps_the_candidate_inside_it() -> None:
    pond = np.zeros((100, 100), bool)
    pond[40:60, 40:60] = True
    box = np.array([30.0, 30.0, 70.0, 70.0])
    whole = np.zeros_like(pond)
    whole[30:70, 30:70] = True  # fills the box: its border too
    masks = np.stack([pond, whole, np.zeros_like(pond)])
    assert choose_box_candidate(masks, np.array([0.5, 0.9, 0.99]), box) == 0


def test_growth_follows_only_water_of_the_objects_colour() -> None:
    rgb, water, click = two_fields()
    sam = np.ones_like(water)
    consistent = Appearance.at(rgb, click).consistent(rgb)
    np.testing.assert_array_equal(evidence_water(sam, consistent), water)
    assert evidence_water(sam, None) is sam


def test_edge_seeds_lie_in_the_overlap_and_in_water() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    tile = grid.tile(1, 1)
    water = np.zeros((tile.height, tile.width), bool)
    water[100:140, 30:] = True  # a river leaving through the right edge
    right = grid.neighbours(tile)["right"]
    pts = edge_seeds(water, tile, "right", right)
    assert len(pts) == 1
    (x, y), = pts
    assert right.x0 <= x < tile.x1 and tile.y0 + 100 <= y < tile.y0 + 140
    assert len(edge_seeds(water, tile, "bottom", grid.neighbours(tile)["bottom"])) == 0
    water[:, :] = False
    water[100:140, 30:200] = True  # stops before the edge: nothing to carry
    assert len(edge_seeds(water, tile, "right", right)) == 0


@pytest.mark.parametrize("side", ["right", "left", "bottom", "top"])
def test_edge_seeds_move_with_the_water(side: str) -> None:
    """Seeds are found within each component's box: shifting the water shifts them alike."""
    grid = TileGrid(1000, 777, 256, 64)
    tile = grid.tile(1, 1)
    yy, xx = np.mgrid[0 : tile.height, 0 : tile.width]
    blob = ((xx - 250) / 120.0) ** 2 + ((yy - 60) / 25.0) ** 2 <= 1  # leaves on the right
    blob |= (np.abs(yy - 150) < 4) & (xx > 180)  # a thin channel leaving too
    turn = {"right": lambda a: a, "left": lambda a: a[:, ::-1], "bottom": lambda a: a.T,
            "top": lambda a: a.T[::-1]}[side]
    shift = (40, 0) if side in ("right", "left") else (0, 40)  # (rows, cols) along the edge
    water = turn(blob)
    moved = np.roll(water, shift, axis=(0, 1))
    assert moved.sum() == water.sum()  # nothing wrapped around
    neighbour = grid.neighbours(tile)[side]
    pts = edge_seeds(water, tile, side, neighbour)
    assert len(pts) == 2  # the lake and the channel
    np.testing.assert_array_equal(
        edge_seeds(moved, tile, side, neighbour), pts + [shift[1], shift[0]]
    )


def test_dilation_around_the_water_equals_the_full_dilation() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        water = np.zeros((60, 80), bool)
        y, x = rng.integers(0, 60), rng.integers(0, 80)
        water[y : y + rng.integers(1, 9), x : x + rng.integers(1, 9)] = True
        water &= rng.random(water.shape) < 0.7
        assert np.array_equal(dilated(water, 2), ndimage.binary_dilation(water, iterations=2))
    assert not dilated(np.zeros((5, 5), bool), 2).any()


def _two_ponds() -> np.ndarray:
    water = np.zeros((60, 80), bool)
    water[10:30, 10:30] = True
    water[35:55, 50:75] = True
    return water


def test_a_click_in_promptless_water_keeps_the_body_it_falls_in() -> None:
    water = _two_ponds()
    body = promptless_body(water, np.array([[20.5, 20.5]]), np.zeros((0, 2)))
    expected = np.zeros_like(water)
    expected[10:30, 10:30] = True
    np.testing.assert_array_equal(body, expected)
    # two clicks, one per pond: both bodies
    both = promptless_body(water, np.array([[20.5, 20.5], [60.5, 40.5]]), np.zeros((0, 2)))
    np.testing.assert_array_equal(both, water)


def test_a_click_just_beside_promptless_water_takes_that_body() -> None:
    water = _two_ponds()
    body = promptless_body(water, np.array([[33.5, 20.5]]), np.zeros((0, 2)))  # 4 px right
    np.testing.assert_array_equal(body, water & (np.arange(80) < 40)[None, :])


@pytest.mark.parametrize(("positives", "negatives"), [
    ([[5.5, 50.5]], []),  # a click on promptless-dry land: the candidate choice decides
    ([[20.5, 20.5]], [[25.5, 12.5]]),  # a negative point inside the body: the same
    ([[500.5, 20.5]], []),  # a click outside the tile
])
def test_no_promptless_body_without_evidence(positives, negatives) -> None:
    body = promptless_body(_two_ponds(), np.array(positives, float).reshape(-1, 2),
                           np.array(negatives, float).reshape(-1, 2))
    assert body is None


def test_promptless_logits_keep_the_body_and_a_soft_edge_only() -> None:
    evidence = np.where(_two_ponds(), 6.0, -1.0).astype(np.float32)
    evidence[40, 5] = 6.0  # another body's pixel, far away
    body = promptless_body(evidence > 0, np.array([[20.5, 20.5]]), np.zeros((0, 2)))
    logits = promptless_logits(evidence, body, 0.0)
    np.testing.assert_array_equal(logits > 0, body)
    near = dilated(body, 3) & ~body
    np.testing.assert_array_equal(logits[near], -1.0)  # the soft edge, below the cut
    assert (logits[~dilated(body, 3)] == -100.0).all()


def test_a_promptless_body_of_other_colours_is_no_evidence() -> None:
    rgb, water, click = two_fields()
    look = Appearance.at(rgb, click)
    assert of_its_colour(water, look, rgb)  # the water left of x=40, the click's colour
    field = ~water  # 60 % of the tile, another colour
    assert not of_its_colour(field, look, rgb)
    small = np.zeros_like(water)
    small[:10, 50:] = True  # another colour but small: the promptless map is trusted
    assert of_its_colour(small, look, rgb)
    everything = np.ones_like(water)  # a decoder calling the whole tile water
    assert not of_its_colour(everything, look, rgb)
    assert of_its_colour(everything, None, rgb)  # no colour known: no objection
