"""The one sigmoid of logits (SAM's and the water prior's)."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.model.logits import CLIP, logit, sigmoid


def test_sigmoid_matches_the_logistic_function_in_float32() -> None:
    x = np.linspace(-40, 40, 100_001, dtype=np.float32)
    p = sigmoid(x)
    assert p.dtype == np.float32 and p.shape == x.shape
    reference = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(p, reference, rtol=2e-6, atol=0)
    assert p[x == 0] == 0.5 and (np.diff(p) >= 0).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_extreme_logits_neither_overflow_nor_leave_the_unit_interval(dtype) -> None:
    x = np.array([-np.inf, -1e30 if dtype != np.float16 else -6e4, -CLIP, CLIP, np.inf], dtype)
    with np.errstate(all="raise"):
        p = sigmoid(x)
    assert p[-1] == 1.0 and p[-2] == 1.0 and 0.0 < p[0] == p[1] == p[2] < 1e-30


def test_input_is_left_alone() -> None:
    x = np.array([[-2.0, 0.0], [3.0, 9.0]], np.float32)
    kept = x.copy()
    sigmoid(x[:, :1])  # a strided view, as a tile's crop of the logits
    np.testing.assert_array_equal(x, kept)


@pytest.mark.parametrize("probability", [1e-3, 0.25, 0.5, 0.9])
def test_logit_is_the_cut_a_probability_threshold_is(probability: float) -> None:
    assert float(sigmoid(np.array([logit(probability)]))[0]) == pytest.approx(probability,
                                                                              rel=1e-6)
