"""Logits as probabilities: the one sigmoid of SAM's logits and of the water prior's.

Computed in float32, in place (one array allocated), with the logits clipped to +-80 so that
``exp`` never overflows float32. Every probability of a run goes through it: a tile's
decoded objects (:mod:`geofloodsam.tiles.work`), the water prior
(:meth:`geofloodsam.water.index.WaterPrior.probability`) and ``evaluate``'s fused rows.
"""

from __future__ import annotations

import numpy as np

#: logits are clipped to +-this before ``exp`` (float32 overflows past about 88)
CLIP = 80.0


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """(...) float32 ``1 / (1 + exp(-logits))`` of an array of logits (any float dtype)."""
    out = np.negative(logits, dtype=np.float32)
    np.exp(np.clip(out, -CLIP, CLIP, out=out), out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def logit(probability: float) -> float:
    """The logit of one ``probability`` in (0, 1): the cut on logits that a probability
    threshold is (``sigmoid(logit(p)) == p``)."""
    return float(np.log(probability / (1.0 - probability)))
