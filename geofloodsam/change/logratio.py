"""Sentinel-1 pairs: the change itself, the log-ratio of after to before backscatter.

``ratio = VV_after(dB) - VV_before(dB)`` (10 log10 of the power ratio), each date
despeckled as the single-date radar split despeckles (:func:`~geofloodsam.water.index.
despeckle_db`), BEFORE read onto AFTER's grid through a warped VRT (nearest). Open water
that appears darkens the backscatter by several dB (water that leaves brightens it), so a
change is a population of large ``|ratio|`` apart from the unchanged pixels near 0. The split
of ``|ratio|`` is found as the single-date split is: its bimodal tiles
(:func:`~geofloodsam.water.index.bimodal_tiles`, Ashman's D >= 2, plausible split in
:data:`PLAUSIBLE` dB), Otsu on their pooled values, on a read decimated to at most
:data:`MAX_SIDE` px a side (memory bounded); :data:`FALLBACK` when no tile is bimodal.
Splitting the magnitude makes the split the same whichever date is called "after".

``auto`` uses the log-ratio when the measurement finds a changed population (at least one
bimodal tile), the two masks' difference otherwise; ``run.json`` says which and why.

With the split ``t`` (> 0) the classes are (A, B: water after, before)::

    flood     A and ratio < -t        (water now, and the surface darkened)
    receded   B and ratio > t         (water before, and the surface brightened)
    permanent A and B, neither
    dry       everything else

so a scene compared with itself has neither flood nor receded (ratio 0), and swapping the
dates (ratio -> -ratio, the same t) swaps flood and receded exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from geofloodsam.change.align import Grid, open_raster
from geofloodsam.change.classes import FLOOD, NODATA, PERMANENT, RECEDED
from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.sensors import detect_sensor, to_db_from
from geofloodsam.water.index import DESPECKLE, bimodal_tiles, despeckle_db, split_threshold

#: where a split of |ratio| is plausible (dB); the split when no tile is bimodal
PLAUSIBLE = (1.5, 15.0)
FALLBACK = 3.0
MAX_SIDE = 2048
HALO = DESPECKLE // 2


class LogRatio:
    """The log-ratio of a Sentinel-1 pair on AFTER's grid, read window by window."""

    def __init__(self, after: Path, before: Path, grid: Grid) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.grid = grid
        self._a = open_raster(after, "AFTER")
        self._b = open_raster(before, "BEFORE")
        self.info_a, self.info_b = detect_sensor(self._a, "s1"), detect_sensor(self._b, "s1")
        options = {"crs": grid.crs, "transform": grid.transform, "width": grid.width,
                   "height": grid.height, "resampling": Resampling.nearest, "add_alpha": True}
        if self._b.nodata is not None:
            options["src_nodata"] = self._b.nodata
        self._vrt = WarpedVRT(self._b, **options)
        self.threshold = FALLBACK

    def _db(self, ds, info, window=None, out_shape=None) -> np.ndarray:
        roles = info.index_bands
        band = roles.get("co", next(iter(roles.values())))  # co-pol (VV/HH), else the one band
        kwargs = {"window": window, "out_shape": out_shape, "masked": True}
        values = ds.read(band, **{k: v for k, v in kwargs.items() if v is not None})
        x = np.ma.filled(values.astype(np.float64), np.nan)
        return to_db_from(info.radar_scale, x)

    def ratio(self, window=None, out_shape=None) -> np.ndarray:
        """Despeckled VV after minus VV before (dB), NaN where either has no data."""
        a = despeckle_db(self._db(self._a, self.info_a, window, out_shape))
        b = despeckle_db(self._db(self._vrt, self.info_b, window, out_shape))
        return a - b

    def measure(self) -> dict[str, Any]:
        """The split of the ratio from its bimodal tiles (decimated read); its record."""
        factor = max(1, math.ceil(max(self.grid.width, self.grid.height) / MAX_SIDE))
        shape = (math.ceil(self.grid.height / factor), math.ceil(self.grid.width / factor))
        ratio = np.abs(self.ratio(out_shape=shape))
        tiles = bimodal_tiles(ratio, PLAUSIBLE)
        details: dict[str, Any] = {"bimodal_tiles": len(tiles), "plausible_db": list(PLAUSIBLE),
                                   "read": "full resolution" if factor == 1 else
                                   f"1/{factor} decimated"}
        if tiles:
            tile = 128
            pooled = np.concatenate([ratio[t["row"]:t["row"] + tile, t["col"]:t["col"] + tile]
                                     .ravel() for t in tiles])
            t = split_threshold(pooled[np.isfinite(pooled)], "otsu")
            if PLAUSIBLE[0] <= t <= PLAUSIBLE[1]:
                self.threshold = t
                details.update(source="tiles", ashman_d_max=max(x["ashman_d"] for x in tiles))
            else:
                details.update(source="fixed", why=f"pooled split {t:.3g} dB outside {PLAUSIBLE}")
        else:
            details.update(source="fixed", why="no bimodal tile: no changed population")
        details["threshold_db"] = round(float(self.threshold), 4)
        return details

    def classes(self, window, a_water, a_valid, b_water, b_valid) -> np.ndarray:
        """uint8 classes of ``window`` (a full-width row strip) from the ratio and the masks."""
        from rasterio.windows import Window

        y0 = max(0, int(window.row_off) - HALO)
        y1 = min(self.grid.height, int(window.row_off + window.height) + HALO)
        ratio = self.ratio(Window(0, y0, self.grid.width, y1 - y0))
        ratio = ratio[int(window.row_off) - y0:int(window.row_off) - y0 + int(window.height)]
        t = self.threshold
        out = np.zeros(a_water.shape, np.uint8)
        out[a_water & b_water] = PERMANENT
        out[b_water & (ratio > t)] = RECEDED
        out[a_water & (ratio < -t)] = FLOOD
        out[~(a_valid & b_valid & np.isfinite(ratio))] = NODATA
        return out

    def close(self) -> None:
        """Close the rasters."""
        self._vrt.close()
        self._b.close()
        self._a.close()


def choose(change: str, after: Path, before: Path, grid: Grid, checked: dict[str, Any]):
    """(rule, record): the log-ratio rule (None: compare the water masks) and why."""
    sensors = checked.get("after_sensor"), checked.get("before_sensor")
    if change == "water":
        return None, {"used": "water", "why": "--change water: the two water masks compared"}
    if sensors != ("s1", "s1"):
        if change == "log-ratio":
            raise GeofloodsamError(
                f"--change log-ratio needs a Sentinel-1 pair; AFTER is {sensors[0]} and BEFORE "
                f"{sensors[1]}: use --change water (or auto)."
            )
        return None, {"used": "water", "why": f"not a Sentinel-1 pair ({sensors[0]}, "
                      f"{sensors[1]}): the two water masks compared"}
    rule = LogRatio(after, before, grid)
    try:
        details = rule.measure()
    except BaseException:
        rule.close()
        raise
    found = details["source"] == "tiles"
    if change == "auto" and not found:
        rule.close()
        return None, {"used": "water", "why": "auto: the log-ratio shows no changed population "
                      "(no bimodal tile of |ratio|); the two water masks compared",
                      "log_ratio": details}
    why = ("auto: the log-ratio has a changed population (bimodal tiles of |ratio|)"
           if change == "auto"
           else "--change log-ratio")
    return rule, {"used": "log-ratio", "why": why, "log_ratio": details}
