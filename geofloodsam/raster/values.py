"""Raster values that are not measurements: data types SAM input cannot be made from, and
undeclared fill values.

Fill: float rasters often mark empty pixels with the type's extreme (float32's lowest value,
-3.4e38, is GDAL's and many tools' default) without declaring it as the nodata value. No
sensor measures anything near :data:`FILL_MAGNITUDE`, so such pixels are read as nodata
wherever values are read (:func:`fill_pixels`, and :func:`sample_bands`, the decimated read
sensor detection looks at), and the scene says so once in a warning line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from geofloodsam.errors import GeofloodsamError

SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
#: float values this far from 0 are fill, not measurements (float32's lowest is -3.4e38)
FILL_MAGNITUDE = 1e30
#: side (px) of the decimated sample read for sensor detection
SAMPLE_SIDE = 256


def check_dtypes(path, dtypes: Iterable[str]) -> None:
    """One-line error for a data type that is not in :data:`SUPPORTED_DTYPES` (complex, ...);
    called before any value is read."""
    bad = sorted(set(dtypes) - set(SUPPORTED_DTYPES))
    if bad:
        raise GeofloodsamError(
            f"raster {path} has data type {bad[0]}, which is not supported: "
            f"convert it to one of {', '.join(SUPPORTED_DTYPES)}."
        )


def fill_pixels(data: np.ndarray) -> np.ndarray:
    """Bool array like ``data``: True at undeclared fill values (float data only)."""
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.floating):
        return np.zeros(data.shape, bool)
    return np.abs(data) >= FILL_MAGNITUDE


def sample_bands(ds, bands: Sequence[int], side: int = SAMPLE_SIDE) -> np.ndarray:
    """A decimated read of ``bands`` (at most ``side`` px a side), float64, NaN where invalid."""
    h = max(1, min(side, ds.height))
    w = max(1, min(side, ds.width))
    data = ds.read(list(bands), out_shape=(len(bands), h, w), masked=True)
    out = np.ma.getdata(data).astype(np.float64)
    out[np.ma.getmaskarray(data) | fill_pixels(out)] = np.nan
    return out
