"""The change classes of a pixel from its water before and after.

=====  =====================================================================
value  class
=====  =====================================================================
0      dry (dry in both)
1      flood (water now, dry before)
2      permanent water (water in both)
3      receded (water before, dry now)
255    nodata (nodata in either scene, or outside their overlap)
=====  =====================================================================

The codes, names and colours are :data:`geofloodsam.qgis.style.CHANGE_CLASSES`.
"""

from __future__ import annotations

import numpy as np

from geofloodsam.qgis.style import CHANGE_CLASSES, CHANGE_NODATA

DRY, FLOOD, PERMANENT, RECEDED = 0, 1, 2, 3
NODATA = CHANGE_NODATA
#: the classes that become polygon layers, in layer order: value -> layer name
POLYGON_CLASSES = {v: CHANGE_CLASSES[v][0] for v in (FLOOD, PERMANENT, RECEDED)}
NAMES = {v: name for v, (name, _) in CHANGE_CLASSES.items()}


def combine(
    after: np.ndarray, after_valid: np.ndarray, before: np.ndarray, before_valid: np.ndarray
) -> np.ndarray:
    """uint8 classes of one window from bool water and validity of each date."""
    out = np.zeros(after.shape, np.uint8)
    out[after & ~before] = FLOOD
    out[after & before] = PERMANENT
    out[~after & before] = RECEDED
    out[~(after_valid & before_valid)] = NODATA
    return out
