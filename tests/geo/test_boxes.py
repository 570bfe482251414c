"""The one box type: x is the column, y the row, half-open, and its arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.geo.boxes import Box
from geofloodsam.geo.transforms import boxes_pixel_to_model, clip_box


def test_fields_sizes_and_slices_index_rows_by_y() -> None:
    box = Box(x0=2, y0=1, x1=7, y1=4)
    assert (box.width, box.height) == (5, 3)
    array = np.arange(6 * 10).reshape(6, 10)
    assert array[box.slices].shape == (3, 5)
    assert np.array_equal(array[box.rows, box.cols], array[1:4, 2:7])
    assert box == (2, 1, 7, 4)  # SAM's and rasterio's order, so arrays of boxes stack as before
    assert np.array_equal(np.stack([box, box]), [[2, 1, 7, 4]] * 2)


def test_at_and_around_agree() -> None:
    mask = np.zeros((8, 12), bool)
    mask[2:5, 3:11] = True
    mask[6, 4] = True
    box = Box.around(mask)
    assert box == Box(x0=3, y0=2, x1=11, y1=7)
    assert all(isinstance(v, int) for v in box)
    assert Box.around(np.zeros((3, 3), bool)) is None
    assert Box.at(3, 2, mask[box.slices].shape) == box
    assert mask[box.slices].sum() == mask.sum()


def test_shift_union_intersection_contains() -> None:
    a, b = Box(0, 0, 4, 2), Box(3, 1, 6, 5)
    assert a.shifted(10, 20) == Box(10, 20, 14, 22)
    assert a.union(b) == Box(0, 0, 6, 5) == b.union(a)
    assert a.intersection(b) == Box(3, 1, 4, 2)
    assert a.intersection(Box(4, 0, 5, 2)) is None  # touching edges share no area
    assert a.union(b).contains(a) and not a.contains(b)


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ((-5.5, 2.0, 30.0, 8.0), Box(0.0, 2.0, 20.0, 8.0)),
        ((1.0, -3.0, 2.0, 50.0), Box(1.0, 0.0, 2.0, 10.0)),
        ((25.0, 2.0, 30.0, 8.0), None),  # right of the raster
        ((np.nan, 2.0, 3.0, 8.0), None),
    ],
)
def test_clip_box_returns_a_box_inside_the_raster(bounds, expected) -> None:
    assert clip_box(bounds, width=20, height=10) == expected


def test_boxes_scale_x_by_width_and_y_by_height() -> None:
    boxes = np.array([Box(0.0, 0.0, 200.0, 100.0), Box(50.0, 25.0, 100.0, 50.0)])
    model = boxes_pixel_to_model(boxes, (100, 200), image_size=1024)  # (h, w)
    assert np.allclose(model, [[0, 0, 1024, 512], [256, 128, 512, 256]])
