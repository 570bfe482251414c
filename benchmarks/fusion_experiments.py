"""The fusions of SAM with the water prior that ``satellite_eval.py`` measures beside the one
``segment`` uses (:func:`geofloodsam.water.fusion.guarded_gate`); figures in
``docs/satellite.md`` ("Fusion rules measured").

* prompts: :func:`prompts_from_prior` places positive points in the largest confidently-wet
  regions and negative points in the largest confidently-dry ones, decoded together with the
  whole-tile box;
* dense prompt: :func:`prior_mask_input` turns the prior into SAM's ``mask_input`` (low-res
  logits in the model frame);
* boxes: :func:`region_boxes`, one box per confidently-wet region, decoded as N objects;
* probabilities: :func:`fuse` combines SAM's water probability with the prior's per pixel
  (``mean``, ``gate``, ``union``, ``intersection``; see :data:`RULES`).

Everything here works on one chip with the scene-level prior cut to it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geofloodsam.datasets.truth_prompts import deepest_point
from geofloodsam.errors import GeofloodsamError
from geofloodsam.water.fusion import CONFIDENT, gate

#: probability fusion rules
RULES = ("mean", "gate", "union", "intersection")
#: smallest confident region (px) that gets a point
MIN_REGION = 64
MAX_POINTS = 5
#: SAM logits of a mask_input made from the prior are clipped to +-this
MASK_LOGIT_CLIP = 10.0


def fuse(
    sam_prob: np.ndarray,
    prior_prob: np.ndarray,
    rule: str = "mean",
    prior_logits: np.ndarray | None = None,
    margin: float = CONFIDENT,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Fused water probability (H, W) float32 from SAM's and the prior's probabilities.

    Rules: ``mean`` = (p_sam + p_prior) / 2; ``gate`` = the prior where it is confident
    (``|prior_logits| >= margin``), SAM elsewhere; ``union`` = max; ``intersection`` = min.
    Where ``valid`` is False (no prior evidence) SAM's probability is kept.
    """
    if rule == "gate":
        if prior_logits is None:
            raise GeofloodsamError("the gate rule needs the prior's logits.")
        return gate(sam_prob, prior_prob, prior_logits, margin, valid)
    sam_prob = np.asarray(sam_prob, np.float32)
    prior_prob = np.asarray(prior_prob, np.float32)
    if rule == "mean":
        out = 0.5 * (sam_prob + prior_prob)
    elif rule == "union":
        out = np.maximum(sam_prob, prior_prob)
    elif rule == "intersection":
        out = np.minimum(sam_prob, prior_prob)
    else:
        raise GeofloodsamError(f"fusion rule {rule!r}: use one of {', '.join(RULES)}.")
    if valid is not None:
        out = np.where(valid, out, sam_prob)
    return out.astype(np.float32)


def _region_points(mask: np.ndarray, n: int, min_area: int) -> list[list[float]]:
    """Deepest points (x, y) of the ``n`` largest 8-connected regions of ``mask``."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")[:n]
    points = []
    for k in order:
        if sizes[k] < min_area:
            break
        p = deepest_point(labels == k + 1)
        if p is not None:
            points.append(p)
    return points


def prompts_from_prior(
    prior_logits: np.ndarray,
    margin: float = CONFIDENT,
    max_points: int = MAX_POINTS,
    min_area: int = MIN_REGION,
    negatives: bool = True,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(points (1, K, 2) x/y px, labels (1, K)) from a prior, or None without confident water.

    Positive points: the deepest pixel of each of the ``max_points`` largest regions where the
    prior's logit is >= ``margin``; negative points likewise where it is <= -``margin``.
    """
    wet = prior_logits >= margin
    pos = _region_points(wet, max_points, min_area)
    if not pos:
        return None
    neg = _region_points(prior_logits <= -margin, max_points, min_area) if negatives else []
    pts = np.array([pos + neg], dtype=np.float64)
    labels = np.array([[1] * len(pos) + [0] * len(neg)], dtype=np.int64)
    return pts, labels


def region_boxes(
    prior_logits: np.ndarray,
    margin: float = CONFIDENT,
    max_regions: int = 32,
    min_area: int = MIN_REGION,
    pad: float = 0.1,
) -> np.ndarray | None:
    """(N, 4) x0, y0, x1, y1 px boxes around the ``max_regions`` largest confident-water regions.

    Each box is the region's bounding box grown by ``pad`` of its side on every edge (clipped
    to the image). Decoded as N objects and united, they make SAM map each water body on its
    own, where one whole-image box gives a single mask. None without a region.
    """
    h, w = prior_logits.shape
    labels, count = ndimage.label(prior_logits >= margin, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")[:max_regions]
    slices = ndimage.find_objects(labels)
    boxes = []
    for k in order:
        if sizes[k] < min_area:
            break
        rs, cs = slices[k]
        dy, dx = pad * (rs.stop - rs.start), pad * (cs.stop - cs.start)
        boxes.append([max(0.0, cs.start - dx), max(0.0, rs.start - dy),
                      min(float(w), cs.stop + dx), min(float(h), rs.stop + dy)])
    return np.array(boxes, dtype=np.float64) if boxes else None


def prior_mask_input(
    prior_logits: np.ndarray,
    input_size: tuple[int, int],
    image_size: int = 1024,
    gain: float = 1.0,
    clip: float = MASK_LOGIT_CLIP,
) -> np.ndarray:
    """The prior as SAM's ``mask_input``: (1, 1, 256, 256) float32 logits in the model frame.

    ``prior_logits`` (H, W) at the image's resolution is resized to ``input_size`` / 4 (the
    low-res frame of the resized image, top-left) and zero-padded; times ``gain``, clipped.
    """
    import torch
    import torch.nn.functional as F

    low = image_size // 4
    h, w = (max(1, round(s / 4)) for s in input_size)
    x = torch.from_numpy(np.ascontiguousarray(prior_logits, dtype=np.float32))[None, None]
    x = F.interpolate(x, (h, w), mode="bilinear", align_corners=False)
    out = torch.zeros((1, 1, low, low))
    out[..., :h, :w] = x
    return (out.clamp(-clip / gain, clip / gain) * gain).numpy().astype(np.float32)
