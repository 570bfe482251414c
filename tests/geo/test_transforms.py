"""Coordinate transforms: pixel <-> model and world <-> pixel round trips."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import box

from geofloodsam.geo import transforms


@pytest.mark.parametrize("size", [(300, 500), (500, 300), (1024, 1024), (219, 330), (3456, 5184)])
def test_pixel_model_roundtrip_non_square(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    pts = rng.random((7, 3, 2)) * np.array([size[1], size[0]])
    there = transforms.pixel_to_model(pts, size)
    back = transforms.model_to_pixel(there, size)
    np.testing.assert_allclose(back, pts, rtol=0, atol=1e-9)
    # the far corner of the image lands on the far corner of the resized image
    h, w = transforms.resized_size(size)
    assert max(h, w) == 1024
    np.testing.assert_allclose(
        transforms.pixel_to_model(np.array([size[1], size[0]]), size), [w, h]
    )


def test_boxes_scale_like_points() -> None:
    size = (300, 500)
    b = np.array([[10, 20, 110, 220]], dtype=float)
    np.testing.assert_allclose(
        transforms.boxes_pixel_to_model(b, size).reshape(2, 2),
        transforms.pixel_to_model(b.reshape(2, 2), size),
    )


def test_world_pixel_roundtrip_rotated_transform() -> None:
    t = Affine(2.0, 0.3, 500000.0, -0.2, -2.0, 4100000.0)
    cols = np.array([0.0, 0.5, 10.25, 999.0])
    rows = np.array([0.0, 0.5, 3.75, 777.0])
    xs, ys = transforms.pixel_to_world(t, cols, rows)
    c2, r2 = transforms.world_to_pixel(t, xs, ys)
    np.testing.assert_allclose(c2, cols, atol=1e-6)
    np.testing.assert_allclose(r2, rows, atol=1e-6)


def test_window_transform_offsets_origin() -> None:
    t = Affine(10.0, 0.0, 1000.0, 0.0, -10.0, 2000.0)
    w = transforms.window_transform(t, 5, 7)
    assert (w.c, w.f) == pytest.approx((1050.0, 1930.0))
    assert (w.a, w.e) == (t.a, t.e)


def test_reprojected_box_uses_the_whole_edge_not_two_corners() -> None:
    """A wide lon/lat box: its UTM bounds exceed what its two corners alone give."""
    geom = box(-102.0, 46.0, -98.0, 48.0)
    utm = transforms.reproject_geometries([geom], "EPSG:4326", "EPSG:32614").iloc[0]
    corners = transforms.reproject_geometries(
        [shapely.Point(-102.0, 46.0), shapely.Point(-98.0, 48.0)], "EPSG:4326", "EPSG:32614"
    )
    two_corner_miny = min(p.y for p in corners)
    # the bottom edge bows south of the corners in UTM: the densified bounds must see it
    assert utm.bounds[1] < two_corner_miny - 100.0
