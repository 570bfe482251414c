"""The fusion rule ``segment`` uses (:func:`geofloodsam.water.fusion.guarded_gate`): the prior
decides where it is confident, SAM the rest, and only on a tile where SAM agrees with it."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.water.fusion import CONFIDENT, MIN_AGREEMENT, agreement, guarded_gate


def _prior(logits: list[float]) -> tuple[np.ndarray, np.ndarray]:
    lg = np.array(logits, np.float32)
    return (1.0 / (1.0 + np.exp(-lg))).astype(np.float32), lg


def test_agreement_counts_the_confident_pixels_only() -> None:
    _, lg = _prior([5.0, 5.0, -5.0, -5.0, 0.5, -0.5])  # 4 confident, 2 unsure
    assert agreement(np.array([1, 1, 0, 0, 0, 1], bool), lg) == 1.0  # unsure ones don't count
    assert agreement(np.array([1, 0, 0, 1, 1, 1], bool), lg) == 0.5
    assert agreement(np.ones(3, bool), np.zeros(3, np.float32)) == 1.0  # nothing confident


def test_guarded_gate_lets_sam_decide_only_where_the_prior_is_unsure() -> None:
    prior, lg = _prior([5.0, -5.0, 0.5, -0.5])
    sam = np.array([0.9, 0.1, 0.2, 0.8], np.float32)  # agrees on the confident pixels
    out, agree = guarded_gate(sam, prior, lg)
    assert agree == 1.0 >= MIN_AGREEMENT
    np.testing.assert_array_equal(out, [prior[0], prior[1], sam[2], sam[3]])
    assert out.dtype == np.float32 and abs(lg[2]) < CONFIDENT


@pytest.mark.parametrize("valid", [None, np.array([True, True, True, False])])
def test_guarded_gate_falls_back_to_the_prior_when_sam_disagrees(valid) -> None:
    prior, lg = _prior([5.0, 5.0, -5.0, -5.0])
    sam = np.array([0.1, 0.9, 0.9, 0.9], np.float32)  # floods the dry, misses some water
    out, agree = guarded_gate(sam, prior, lg, valid)
    assert agree == 0.25 < MIN_AGREEMENT
    expected = prior if valid is None else np.where(valid, prior, sam)
    np.testing.assert_array_equal(out, expected)  # SAM kept only where the prior has no data
