"""The default evaluation prompts, derived from a ground-truth mask.

* ``box``: the bounding box of all water;
* ``point``: one positive point at the deepest interior pixel (largest distance to the
  border) of the largest connected water body.

Both are deterministic, so every model is scored on the same prompts.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geofloodsam.geo.boxes import Box


def water_box(truth: np.ndarray) -> list[float] | None:
    """The pixel box (pixel edges, :class:`~geofloodsam.geo.boxes.Box` fields as a JSON list)
    around all water, or None without water."""
    box = Box.around(truth)
    return None if box is None else [float(v) for v in box]


def largest_body(truth: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest 8-connected water body (empty if there is no water)."""
    labels, n = ndimage.label(truth, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return np.zeros_like(truth, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def deepest_point(region: np.ndarray) -> list[float] | None:
    """x, y (pixel centre) of the region pixel farthest from the region's border."""
    if not region.any():
        return None
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return [float(col) + 0.5, float(row) + 0.5]


def default_prompts(truth: np.ndarray) -> dict[str, dict]:
    """Default prompts for a truth mask: ``{"box": {"box": b}, "point": {"points", "labels"}}``."""
    truth = np.asarray(truth, dtype=bool)
    point = deepest_point(largest_body(truth))
    return {
        "box": {"box": water_box(truth)},
        "point": {
            "points": [] if point is None else [point],
            "labels": [] if point is None else [1],
        },
    }
