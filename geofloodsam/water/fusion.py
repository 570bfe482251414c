"""Fusing a scene's water prior (:mod:`geofloodsam.water.index`) with SAM: the guarded gate.

:func:`guarded_gate` is the rule of ``--method fused``: the prior decides the pixels it is
confident about (at least :data:`CONFIDENT` widths from its threshold), SAM the rest, and
only on a tile where SAM agrees with the prior's confident pixels; otherwise the prior alone.
The other ways of fusing that were measured against it (mean, union, intersection, prompts
and ``mask_input`` from the prior, one box per water region) live with the benchmark that
measures them, ``benchmarks/fusion_experiments.py`` (figures in ``docs/satellite.md``).

Everything here works on one tile (or chip) with the scene-level prior cut to it.
"""

from __future__ import annotations

import numpy as np

#: margin (in prior widths) beyond which the prior is "confident"
CONFIDENT = 2.0
#: guarded gate: least agreement of SAM with the prior's confident pixels to use SAM at all
MIN_AGREEMENT = 0.9


def gate(
    sam_prob: np.ndarray,
    prior_prob: np.ndarray,
    prior_logits: np.ndarray,
    margin: float = CONFIDENT,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) float32: the prior where it is confident (``|prior_logits| >= margin``), SAM
    elsewhere; SAM's probability also where ``valid`` is False (no prior evidence)."""
    sam_prob = np.asarray(sam_prob, np.float32)
    prior_prob = np.asarray(prior_prob, np.float32)
    out = np.where(np.abs(prior_logits) >= margin, prior_prob, sam_prob)
    if valid is not None:
        out = np.where(valid, out, sam_prob)
    return out.astype(np.float32)


def agreement(sam_water: np.ndarray, prior_logits: np.ndarray, margin: float = CONFIDENT) -> float:
    """Fraction of the prior's confident pixels (wet or dry) on which SAM's mask agrees.

    1.0 when the prior has no confident pixel.
    """
    wet, dry = prior_logits >= margin, prior_logits <= -margin
    n = int(wet.sum() + dry.sum())
    if n == 0:
        return 1.0
    return float((np.count_nonzero(sam_water & wet) + np.count_nonzero(~sam_water & dry)) / n)


def guarded_gate(
    sam_prob: np.ndarray,
    prior_prob: np.ndarray,
    prior_logits: np.ndarray,
    valid: np.ndarray | None = None,
    margin: float = CONFIDENT,
    min_agreement: float = MIN_AGREEMENT,
) -> tuple[np.ndarray, float]:
    """The :func:`gate` when SAM agrees with the prior's confident pixels, else the prior.

    Returns (fused probability, agreement). SAM only decides the pixels the prior is unsure
    about, and only on a tile where it reproduces at least ``min_agreement`` of what the prior
    is sure about; a SAM mask that floods the whole tile (or misses the obvious water) falls
    back to the prior alone.
    """
    agree = agreement(sam_prob > 0.5, prior_logits, margin)
    if agree < min_agreement:
        out = prior_prob.astype(np.float32)
        if valid is not None:
            out = np.where(valid, out, sam_prob).astype(np.float32)
        return out, agree
    return gate(sam_prob, prior_prob, prior_logits, margin, valid), agree
