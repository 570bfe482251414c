"""Segmentation metrics from confusion counts: IoU, Dice, Precision, Recall.

Counts are accumulated first (per image, per window, or summed over a data set for the
pooled figure), then turned into scores. Pixels outside ``valid`` (nodata) are ignored.

Empty cases, by convention:

* truth and prediction both empty: IoU = Dice = Precision = Recall = 1 (a perfect "no water");
* prediction empty, truth not: Precision = 1 (no false alarm was made), Recall = IoU = Dice = 0;
* truth empty, prediction not: Recall = 1 (nothing was missed), Precision = IoU = Dice = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("iou", "dice", "precision", "recall")


@dataclass
class Confusion:
    """True/false positive/negative pixel counts."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    def scores(self) -> dict[str, float]:
        """IoU, Dice, Precision and Recall, with the empty-case conventions above."""
        tp, fp, fn = self.tp, self.fp, self.fn
        return {
            "iou": _ratio(tp, tp + fp + fn),
            "dice": _ratio(2 * tp, 2 * tp + fp + fn),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
        }


def _ratio(num: int, den: int) -> float:
    return 1.0 if den == 0 else float(num) / float(den)


def confusion(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> Confusion:
    """Confusion counts of boolean ``pred`` against boolean ``truth`` where ``valid``."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        pred, truth = pred[valid], truth[valid]
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = int(pred.size - tp - fp - fn)
    return Confusion(tp, fp, fn, tn)


def scores(
    pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None
) -> dict[str, float]:
    """IoU, Dice, Precision, Recall of one prediction."""
    return confusion(pred, truth, valid).scores()
