"""Growth of prompted objects: candidate choice, appearance, seeds into neighbour tiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from geofloodsam.tiles.engine import ObjectInfo
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.growth import (
    CARRIED_CUT_PIXELS,
    COLOUR_TOLERANCE,
    MAX_CARRIED_POINTS,
    MAX_VISITS,
    Appearance,
    Reach,
    add_seed,
    backed_large_candidates,
    candidates_agree,
    choose_box_candidate,
    choose_point_candidate,
    connected_water,
    covered,
    crop_seed,
    dilated,
    edge_seeds,
    evidence_water,
    of_its_colour,
    promptless_body,
    promptless_logits,
    reaches_edge,
)
from geofloodsam.tiles.store import TileStore
from geofloodsam.tiles.tasks import Crop, Seed


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



# --------------------------------------------------------------------------- in a tile
def test_connected_water_keeps_the_components_holding_a_point() -> None:
    water = np.zeros((10, 10), bool)
    water[1:3, 1:3] = True
    water[3, 3] = True  # diagonal: 8-connected to the first
    water[7:9, 7:10] = True  # reaches the right edge
    one = connected_water(water, np.array([[1.5, 1.5]]))
    assert one.sum() == 5 and not one[7:9].any()
    beyond = np.array([[-3.0, 1.5]])  # left of the tile: clipped to column 0, or nothing
    assert not connected_water(water, beyond).any()  # column 0 is dry in row 1
    assert not connected_water(water, beyond, outside=True).any()
    assert connected_water(water, np.array([[20.0, 8.5]])).sum() == 6  # clipped to column 9
    assert not connected_water(water, np.array([[20.0, 8.5]]), outside=True).any()


def test_a_click_is_covered_only_when_all_its_water_points_are_mapped() -> None:
    mapped = np.zeros((10, 10), bool)
    mapped[:5] = True
    click = np.array([[2.5, 2.5]])
    assert covered(Seed(1, click, np.array([1])), mapped)
    assert not covered(Seed(1, np.array([[2.5, 2.5], [2.5, 7.5]]), np.array([1, 1])), mapped)
    assert not covered(Seed(1, click, np.array([1]), carried=True), mapped)
    assert not covered(Seed(1, np.array([[2.5, 2.5], [3.5, 1.5]]), np.array([1, 0])), mapped)
    assert not covered(Seed(1, np.array([[12.5, 2.5]]), np.array([1])), mapped)
    assert not covered(Seed(1, box=np.array([0.0, 0.0, 4.0, 4.0])), mapped)


def test_a_carried_seed_keeps_only_its_connected_water() -> None:
    logits = np.full((40, 40), -20.0, np.float32)
    logits[5:15, 5:15] = 8.0  # the water the seed was carried into
    logits[25:35, 25:35] = 8.0  # an unrelated dark field
    floor = 1 / 512
    lf = float(np.log(floor / (1 - floor)))
    points, labels = np.array([[10.5, 10.5]]), np.array([1])
    clicked, water = crop_seed(logits, Seed(1, points, labels, propagate=True), lf, floor, 0.5)
    carried, cut = crop_seed(logits, Seed(1, points, labels, propagate=True, carried=True), lf,
                             floor, 0.5)
    assert (clicked.r0, clicked.c0, clicked.r1, clicked.c1) == (5, 5, 35, 35)  # both fields
    assert (carried.r0, carried.c0, carried.r1, carried.c1) == (5, 5, 15, 15)
    assert water.full((40, 40)).sum() == cut.full((40, 40)).sum() == 100  # grows in its own
    fixed, none = crop_seed(logits, Seed(1, points, labels), lf, floor, 0.5)
    assert none is None and fixed.data.dtype == np.float16


def test_a_click_with_colours_maps_only_the_water_of_its_colours() -> None:
    """SAM's water beyond the object's colours is cut (no straight cut at the tile edge)."""
    logits = np.full((40, 60), -20.0, np.float32)
    logits[5:35, 5:60] = 8.0  # SAM: one field of water up to the right edge
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = (40, 60, 90)  # the clicked water's colour
    rgb[:, 30:] = (200, 180, 120)  # a dry field of another colour, reaching the edge
    floor = 1 / 512
    lf = float(np.log(floor / (1 - floor)))
    points, labels = np.array([[10.5, 20.5]]), np.array([1])
    look = Appearance.at(rgb, points)
    seed = Seed(1, points, labels, propagate=True)
    prob, water = crop_seed(logits, seed, lf, floor, 0.5, (look, rgb))
    mapped = prob.full((40, 60)) > 0.5
    assert mapped[20, :30].any() and not mapped[:, 30 + CARRIED_CUT_PIXELS + 1 :].any()
    assert not water.full((40, 60))[:, 30:].any()
    plain, _ = crop_seed(logits, seed, lf, floor, 0.5)  # without colours: SAM's water
    assert (plain.full((40, 60)) > 0.5)[20, 59]


# --------------------------------------------------------------------------- across tiles
def test_water_reaches_an_edge_only_where_there_is_a_neighbour() -> None:
    grid = TileGrid(200, 100, 100, 0)
    left, right = grid.tiles[0], grid.tiles[1]
    at_right_edge = Crop(40, 90, np.ones((10, 10), bool))
    assert reaches_edge(at_right_edge, left, grid.neighbours(left))
    assert not reaches_edge(Crop(40, 0, np.ones((10, 10), bool)), left, grid.neighbours(left))
    assert not reaches_edge(Crop(40, 90, np.zeros((10, 10), bool)), left,
                            grid.neighbours(left))
    assert reaches_edge(Crop(40, 0, np.ones((10, 10), bool)), right, grid.neighbours(right))


def test_seeds_of_one_object_merge_and_keep_their_negatives() -> None:
    pending: dict[int, list[Seed]] = {}
    add_seed(pending, 3, Seed(1, np.array([[1.0, 1.0], [9.0, 9.0]]), np.array([1, 0])))
    for k in range(MAX_CARRIED_POINTS):
        add_seed(pending, 3, Seed(1, np.array([[2.0 + k, 2.0]]), np.array([1])))
    add_seed(pending, 3, Seed(2, np.array([[5.0, 5.0]]), np.array([1])))
    first, other = pending[3]
    assert first.labels.tolist() == [1] * MAX_CARRIED_POINTS + [0]
    assert first.points[-1].tolist() == [9.0, 9.0] and other.obj == 2


def test_admission_drops_seeds_in_own_water_and_over_the_caps(tmp_path) -> None:
    grid = TileGrid(300, 100, 100, 0)
    store = TileStore(tmp_path, prob_dtype=np.float32)
    store.update_crop(grid.tiles[1], 1, 0, 0, np.ones((50, 50), np.float32))  # object 1's water
    objects = {1: ObjectInfo(1, "point"), 2: ObjectInfo(2, "point")}

    def pending() -> dict[int, list[Seed]]:
        inside, dry = np.array([[10.5, 10.5]]), np.array([[80.5, 80.5]])
        return {1: [Seed(1, inside, np.array([1])), Seed(2, inside, np.array([1])),
                    Seed(1, np.concatenate([inside, dry]), np.array([1, 1]))]}

    reach = Reach(max_object_tiles=256)
    out = reach.admit(pending(), grid, store, 0.5, objects)
    # object 1's seed inside its own water is dropped; object 2's is not; the third keeps
    # only its dry point
    assert [(s.obj, s.points.tolist()) for s in out[1]] == [(2, [[10.5, 10.5]]),
                                                            (1, [[80.5, 80.5]])]
    assert all(s.carried and s.propagate for s in out[1])
    for _ in range(MAX_VISITS):
        reach.admit(pending(), grid, store, 0.5, objects)
    assert reach.admit(pending(), grid, store, 0.5, objects) == {}  # visits used up
    capped = Reach(max_object_tiles=1)
    capped.reached(2, 0)
    assert [s.obj for s in capped.admit(pending(), grid, store, 0.5, objects)[1]] == [1]
    assert capped.capped == {2}
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


@pytest.mark.parametrize("gap", [0, 8])
def test_a_body_is_joined_across_gaps_to_the_pieces_of_its_colour(gap: int) -> None:
    """A dark lake, a dark pond 6 px from it and a bright field 6 px from it, all promptless
    water, and a dark pond beyond the field (6 px from it, 36 px from the lake): with a gap
    the click's body takes the ponds (the channels between them are broken in the promptless
    map; the far pond is reached through the field, as lakes are through a river of another
    colour) and leaves the field (promptless water of another colour); without colours it
    takes all; with no gap the lake."""
    rgb = np.full((60, 80, 3), 90, np.uint8)  # grey land
    water = np.zeros((60, 80), bool)
    water[10:40, 10:30] = True  # the lake
    water[10:25, 36:50] = True  # the pond
    water[30:55, 36:60] = True  # the field
    water[30:55, 66:78] = True  # the far pond
    rgb[water] = 20
    rgb[30:55, 36:60] = (150, 110, 60)
    click = np.array([[20.5, 20.5]])
    colours = (Appearance.at(rgb, click), rgb)
    body = promptless_body(water, click, np.zeros((0, 2)), gap, colours)
    lake = np.zeros_like(water)
    lake[10:40, 10:30] = True
    ponds = water & ~lake
    ponds[30:55, 36:60] = False
    np.testing.assert_array_equal(body, lake | ponds if gap else lake)
    every = promptless_body(water, click, np.zeros((0, 2)), gap)
    np.testing.assert_array_equal(every, water if gap else lake)


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


def test_a_body_is_backed_when_every_candidate_agrees_with_it() -> None:
    rgb, water, click = two_fields()
    body = water.copy()  # the promptless body: 40 % of the tile
    near = water.copy()
    near[:, 36:40] = False  # 90 % of the body: agrees
    assert candidates_agree(np.stack([near, water, water]), click, body)
    small = np.zeros_like(water)
    small[40:60, 10:30] = True  # one ambiguous answer (a part of it) is enough to disagree
    assert not candidates_agree(np.stack([small, water, water]), click, body)
    assert not candidates_agree(np.stack([water, np.ones_like(water)]), click, body)
    assert not candidates_agree(np.stack([water]), np.zeros((0, 2)), body)  # no click
    assert not candidates_agree(np.stack([water]), click, np.zeros_like(water))  # no body


def test_large_candidates_need_the_colour_and_the_promptless_water() -> None:
    rgb, water, click = two_fields()
    look = Appearance.at(rgb, click)
    consistent = look.consistent(rgb)
    lake = np.zeros_like(water)
    lake[:, :70] = True  # 40 of its 70 columns the click's colour (57 %)
    masks = np.stack([lake, np.ones_like(water)])  # and the whole tile (40 %)
    wet = np.zeros_like(water)
    wet[:, 20:50] = True  # promptless water: 30 of the lake's 70 columns (43 %)
    np.testing.assert_array_equal(backed_large_candidates(masks, click, consistent, wet),
                                  [True, False])
    assert not backed_large_candidates(masks, click, consistent, np.zeros_like(water)).any()
    assert not backed_large_candidates(masks, click, None, wet).any()  # no colour known
