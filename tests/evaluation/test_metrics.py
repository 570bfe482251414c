"""Metrics on small hand-made masks, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from geofloodsam.evaluation.metrics import Confusion, confusion, scores


def grid(text: str) -> np.ndarray:
    """A boolean mask from rows of 0/1 characters."""
    return np.array([[c == "1" for c in row] for row in text.split()], dtype=bool)


PRED = grid("1100 1100 0000")
TRUTH = grid("0110 0110 0000")


def test_confusion_counts_by_hand():
    # overlap: (0,1), (1,1); pred only: (0,0), (1,0); truth only: (0,2), (1,2); 6 left
    assert confusion(PRED, TRUTH) == Confusion(tp=2, fp=2, fn=2, tn=6)


def test_scores_by_hand():
    s = scores(PRED, TRUTH)
    # IoU = 2 / (2+2+2); Dice = 2*2 / (2*2+2+2); P = 2 / (2+2); R = 2 / (2+2)
    assert s == pytest.approx({"iou": 1 / 3, "dice": 1 / 2, "precision": 1 / 2, "recall": 1 / 2})


def test_nodata_pixels_are_excluded():
    valid = np.ones_like(PRED)
    valid[:, 0] = False  # drops the two false positives of column 0 and 1 true negative
    c = confusion(PRED, TRUTH, valid)
    assert c == Confusion(tp=2, fp=0, fn=2, tn=5)
    s = c.scores()
    # IoU = 2/4, Dice = 4/6, P = 2/2, R = 2/4
    assert s == pytest.approx({"iou": 0.5, "dice": 2 / 3, "precision": 1.0, "recall": 0.5})


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        # both empty: a perfect "no water"
        ("000 000", "000 000", {"iou": 1.0, "dice": 1.0, "precision": 1.0, "recall": 1.0}),
        # prediction empty: no false alarm (P = 1), everything missed
        ("000 000", "011 000", {"iou": 0.0, "dice": 0.0, "precision": 1.0, "recall": 0.0}),
        # truth empty: nothing missed (R = 1), every predicted pixel is a false alarm
        ("110 000", "000 000", {"iou": 0.0, "dice": 0.0, "precision": 0.0, "recall": 1.0}),
        # disjoint, both non-empty: all zero
        ("100 000", "000 001", {"iou": 0.0, "dice": 0.0, "precision": 0.0, "recall": 0.0}),
        # identical: all one
        ("110 010", "110 010", {"iou": 1.0, "dice": 1.0, "precision": 1.0, "recall": 1.0}),
    ],
)
def test_empty_and_extreme_cases(pred, truth, expected):
    assert scores(grid(pred), grid(truth)) == pytest.approx(expected)


def test_everything_nodata_counts_nothing():
    valid = np.zeros_like(PRED)
    c = confusion(PRED, TRUTH, valid)
    assert c == Confusion(0, 0, 0, 0)
    assert c.scores() == {"iou": 1.0, "dice": 1.0, "precision": 1.0, "recall": 1.0}


def test_pooled_counts_differ_from_mean_of_scores():
    # image A: tp=1, fp=0, fn=0 (IoU 1); image B: tp=1, fp=3, fn=0 (IoU 1/4)
    a = confusion(grid("10 00"), grid("10 00"))
    b = confusion(grid("11 11"), grid("10 00"))
    pooled = a + b
    assert pooled == Confusion(tp=2, fp=3, fn=0, tn=3)
    assert pooled.scores()["iou"] == pytest.approx(2 / 5)  # not the mean (1 + 1/4) / 2
    assert np.mean([a.scores()["iou"], b.scores()["iou"]]) == pytest.approx(5 / 8)


def test_non_boolean_inputs_are_cast():
    assert confusion(PRED.astype(np.uint8) * 255, TRUTH.astype(int)) == Confusion(2, 2, 2, 6)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        confusion(PRED, TRUTH[:, :3])
