"""Training prompts sampled from the truth: where they fall, their targets, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from geofloodsam.datasets.truth_prompts import default_prompts
from geofloodsam.geo import transforms
from geofloodsam.training.config import MODE_KINDS
from geofloodsam.training.prompt_sampling import (
    KINDS,
    LOWRES,
    lowres_truth,
    sample_prompts,
)

H, W = 300, 500  # resized into the model frame: 614 x 1024, low-res 154 x 256


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """Two water bodies (a large lake, a small pond) and a nodata strip at the bottom."""
    water = np.zeros((H, W), dtype=bool)
    water[40:200, 60:300] = True
    water[230:270, 400:460] = True
    valid = np.ones((H, W), dtype=bool)
    valid[285:] = False
    return water, valid


@pytest.fixture(scope="module")
def truth(scene):
    return lowres_truth(*scene)


def test_lowres_frame(truth, scene):
    water, valid = scene
    ih, iw = transforms.resized_size((H, W))
    assert truth.input_size == (ih, iw)
    assert truth.water.shape == (-(-ih * LOWRES // 1024), -(-iw * LOWRES // 1024))
    assert truth.water.dtype == np.float32 and 0 <= truth.water.min() <= truth.water.max() <= 1
    # fraction of water roughly preserved, nodata strip invalid
    frac = truth.water[truth.valid].mean()
    assert abs(frac - water[valid].mean()) < 0.02
    assert not truth.valid[-3:].any() and truth.valid[:100].all()
    assert len(truth.regions) == 2


def test_eval_prompts_are_the_default_ones(truth, scene):
    water, valid = scene
    expected = default_prompts(water & valid)
    assert truth.eval_box == expected["box"]["box"]
    assert truth.eval_point == expected["point"]["points"][0]


def _inside(water: np.ndarray, xy: np.ndarray) -> bool:
    col, row = int(xy[0]), int(xy[1])
    return bool(water[row, col])


def test_points_inside_water_away_from_the_border(truth, scene):
    water, _ = scene
    depth = ndimage.distance_transform_edt(water)
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = sample_prompts(truth, "point", 4, rng)
        assert batch.points.shape == (4, 1, 2) and batch.multimask
        for (xy,) in batch.points:
            assert _inside(water, xy) and depth[int(xy[1]), int(xy[0])] >= 3
        np.testing.assert_array_equal(batch.targets[0], truth.water)


def test_negative_points_on_dry_valid_ground(truth, scene):
    water, valid = scene
    rng = np.random.default_rng(1)
    seen_negative = 0
    for _ in range(30):
        batch = sample_prompts(truth, "points", 3, rng)
        for pts, labels in zip(batch.points, batch.labels, strict=True):
            for xy, lab in zip(pts, labels, strict=True):
                if lab == 1:
                    assert _inside(water, xy)
                elif lab == 0:
                    seen_negative += 1
                    assert not _inside(water, xy) and _inside(valid, xy)
    assert seen_negative > 0


def test_water_boxes_are_jittered_around_all_water(truth, scene):
    water, _ = scene
    exact = np.array(default_prompts(water)["box"]["box"])
    rng = np.random.default_rng(2)
    boxes = np.concatenate([sample_prompts(truth, "box", 8, rng).boxes for _ in range(10)])
    assert ((boxes[:, 0] >= 0) & (boxes[:, 2] <= W) & (boxes[:, 1] >= 0) & (boxes[:, 3] <= H)).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    is_exact = np.all(boxes == exact, axis=1)
    assert 0 < is_exact.sum() < len(boxes)
    # jittered boxes stay near the water box (at most 40 model px ~ 20 image px per edge)
    assert np.abs(boxes - exact).max() <= 40 * W / 1024 + 2


def test_region_box_targets_the_water_inside_it(truth):
    rng = np.random.default_rng(3)
    batch = sample_prompts(truth, "region", 6, rng)
    for target in batch.targets:
        labels, n = ndimage.label(target > 0.5)
        assert n == 1  # one water body per region prompt
        assert target.sum() < truth.water.sum()


def test_whole_image_box(truth):
    batch = sample_prompts(truth, "none", 5, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.boxes, [[0, 0, W, H]])
    assert len(batch) == 1


def test_no_water_falls_back_to_the_whole_image_box():
    dry = lowres_truth(np.zeros((50, 60), bool), np.ones((50, 60), bool))
    for kind in KINDS:
        batch = sample_prompts(dry, kind, 3, np.random.default_rng(0))
        assert batch.kind == "none" and not batch.targets.any()


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_for_a_seed(truth, kind):
    a = sample_prompts(truth, kind, 4, np.random.default_rng(7))
    b = sample_prompts(truth, kind, 4, np.random.default_rng(7))
    for field in ("points", "labels", "boxes", "targets"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None and y is None) or np.array_equal(x, y)


def test_modes_cover_the_promptless_box():
    assert "none" in MODE_KINDS["box"] and "none" in MODE_KINDS["mixed"]
    assert set(MODE_KINDS["mixed"]) == set(KINDS)
