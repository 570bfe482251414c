"""benchmarks/fusion_experiments.py: the fusions measured only by satellite_eval.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from geofloodsam.errors import GeofloodsamError
from geofloodsam.water.fusion import gate

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fusion_experiments as experiments  # noqa: E402


def test_fusion_rules():
    sam = np.array([0.9, 0.2, 0.6, 0.4], np.float32)
    prior = np.array([0.3, 0.8, 0.99, 0.01], np.float32)
    lg = np.log(prior / (1 - prior))
    np.testing.assert_allclose(experiments.fuse(sam, prior, "mean"), (sam + prior) / 2)
    np.testing.assert_allclose(experiments.fuse(sam, prior, "union"), np.maximum(sam, prior))
    np.testing.assert_allclose(
        experiments.fuse(sam, prior, "intersection"), np.minimum(sam, prior)
    )
    gated = experiments.fuse(sam, prior, "gate", lg, margin=2.0)
    np.testing.assert_array_equal(gated, gate(sam, prior, lg, 2.0))  # the package's gate
    np.testing.assert_allclose(gated, [0.9, 0.2, 0.99, 0.01])
    with pytest.raises(GeofloodsamError, match="rule"):
        experiments.fuse(sam, prior, "vote")
    with pytest.raises(GeofloodsamError, match="logits"):
        experiments.fuse(sam, prior, "gate")


def test_prompts_from_prior_and_mask_input():
    lg = np.full((64, 64), -5.0, np.float32)
    lg[10:30, 10:30] = 5.0
    pts, labels = experiments.prompts_from_prior(lg, min_area=16)
    assert labels.tolist() == [[1, 0]]
    x, y = pts[0, 0]
    assert 10 <= x <= 30 and 10 <= y <= 30
    assert experiments.prompts_from_prior(np.full((8, 8), -5.0)) is None
    mi = experiments.prior_mask_input(lg, (1024, 512))
    assert mi.shape == (1, 1, 256, 256)
    assert mi[0, 0, :, 128:].max() == 0  # padding right of the resized image
    assert mi.max() <= experiments.MASK_LOGIT_CLIP


def test_region_boxes():
    lg = np.full((64, 64), -5.0, np.float32)
    lg[10:20, 10:20] = 5.0
    lg[40:60, 30:60] = 5.0
    boxes = experiments.region_boxes(lg, min_area=16, pad=0.0)
    assert boxes.tolist() == [[30.0, 40.0, 60.0, 60.0], [10.0, 10.0, 20.0, 20.0]]
    assert experiments.region_boxes(np.full((8, 8), -5.0)) is None
