"""A raster's water prior, tile by tile: one threshold from the scene, evidence per window.

:func:`scene_prior` reads the index bands of the whole scene (a decimated read beyond
:data:`MAX_SIDE` px a side, so memory stays bounded) and computes the scene-level prior of
:func:`geofloodsam.water.index.prior_for`: its threshold is the one every tile then uses.
:class:`PriorSpec` is that threshold and how the evidence is made, small enough to send to
a tile task; :func:`window_prior` computes the evidence of one window with it (radar with a
halo of :data:`HALO` px, so a despeckled window equals the same window of the despeckled
scene)::

    info = detect_sensor(ds)
    prior = scene_prior(ds, info)                  # None for rgb
    spec = PriorSpec.of(prior)                     # -> run.json, tile tasks
    tile = window_prior(ds, info, spec, Window(0, 0, 1024, 1024))
    tile.probability(), tile.logits(), tile.valid
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from rasterio.windows import Window

from geofloodsam.raster.sensors import SensorInfo, physical
from geofloodsam.raster.values import fill_pixels
from geofloodsam.water.index import (
    DESPECKLE,
    INDEX_ROLES,
    INDICES,
    MIN_AREA,
    SOFT_WIDTH,
    WaterPrior,
    despeckle_db,
    normalized_difference,
    prior_for,
    sensor_index,
    small_regions,
)

#: the scene threshold is computed on at most this many pixels a side (a decimated read beyond)
MAX_SIDE = 2048
#: radar windows are read this much larger on every side: the despeckling box filter, then
#: the minimum mapping unit (a region under N px reaches at most N px from the window)
HALO = DESPECKLE // 2 + MIN_AREA
#: the second band of each optical index
_OTHER = {index: INDEX_ROLES[index][1] for index in INDICES}


def _roles(info: SensorInfo) -> tuple[str, ...]:
    """The band roles the sensor's water index reads (those the raster has), () for none."""
    index = sensor_index(info)
    if index is None:
        return ()
    return tuple(r for r in INDEX_ROLES[index] if r in info.index_bands)


def read_index_bands(
    ds, info: SensorInfo, window: Window | None = None, out_shape: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Role -> physical values (reflectance or dB, float64, NaN where invalid) of ``window``."""
    out = {}
    for role in _roles(info):
        band = info.index_bands[role]
        shape = None if out_shape is None else (1, *out_shape)
        data = ds.read([band], window=window, out_shape=shape, masked=True)
        raw = np.ma.getdata(data).astype(np.float64)[0]
        raw[np.ma.getmaskarray(data)[0] | fill_pixels(raw)] = np.nan  # undeclared fill too
        out[role] = physical(raw, info)
    return out


def scene_prior(ds, info: SensorInfo) -> WaterPrior | None:
    """The scene-level prior (None for a sensor without a water index, ``rgb``).

    The whole scene at full resolution when it is at most :data:`MAX_SIDE` px a side,
    otherwise a nearest-neighbour decimated read of that size (recorded in ``details``).
    """
    if not _roles(info):
        return None
    factor = max(1, math.ceil(max(ds.width, ds.height) / MAX_SIDE))
    shape = None if factor == 1 else (math.ceil(ds.height / factor), math.ceil(ds.width / factor))
    prior = prior_for(info, read_index_bands(ds, info, out_shape=shape))
    prior.details["read"] = "full resolution" if factor == 1 else f"1/{factor} decimated"
    return prior


@dataclass(frozen=True)
class PriorSpec:
    """What a tile needs to rebuild its part of the scene prior: evidence kind + threshold."""

    evidence: str  # ndwi | mndwi | co | cross
    threshold: float
    width: float
    water_below: bool
    method: str
    despeckle: int = 0
    min_area: int = 0

    @classmethod
    def of(cls, prior: WaterPrior) -> PriorSpec:
        """From a scene prior of :func:`scene_prior` (NDWI/MNDWI, or one radar polarisation)."""
        despeckle = min_area = 0
        if prior.method.startswith("sar-"):
            evidence = prior.method.split("-")[1]
            if evidence not in ("co", "cross"):
                raise ValueError(f"tile priors support one polarisation, not {prior.method}")
            despeckle = int(prior.details.get("despeckle", DESPECKLE))
            min_area = int(prior.details.get("min_area", 0))
        elif prior.method in _OTHER:
            evidence = prior.method
        else:
            raise ValueError(f"tile priors support ndwi, mndwi and radar, not {prior.method}")
        return cls(evidence, float(prior.threshold), float(prior.width), bool(prior.water_below),
                   prior.method, despeckle, min_area)

    def to_dict(self) -> dict:
        """JSON-ready record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> PriorSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**record)


def window_prior(ds, info: SensorInfo, spec: PriorSpec, window: Window) -> WaterPrior:
    """The prior of ``window`` with the scene's threshold (the same values as cutting
    ``window`` out of a full-resolution scene prior)."""
    c0, r0 = int(window.col_off), int(window.row_off)
    w, h = int(window.width), int(window.height)
    removed = None
    if spec.evidence in _OTHER:
        bands = read_index_bands(ds, info, window)
        score = normalized_difference(bands["green"], bands[_OTHER[spec.evidence]])
    else:
        halo = spec.despeckle // 2 + spec.min_area
        a0, b0 = max(0, r0 - halo), max(0, c0 - halo)
        a1, b1 = min(ds.height, r0 + h + halo), min(ds.width, c0 + w + halo)
        big = read_index_bands(ds, info, Window(b0, a0, b1 - b0, a1 - a0))[spec.evidence]
        big = despeckle_db(big, spec.despeckle).astype(np.float32)
        small = small_regions((big < spec.threshold) & np.isfinite(big), spec.min_area)
        score = big[r0 - a0 : r0 - a0 + h, c0 - b0 : c0 - b0 + w]
        removed = np.ascontiguousarray(small[r0 - a0 : r0 - a0 + h, c0 - b0 : c0 - b0 + w])
    width = spec.width if spec.width else SOFT_WIDTH.get(spec.evidence, 1.0)
    return WaterPrior(np.ascontiguousarray(score, np.float32), spec.threshold, width,
                      spec.water_below, spec.method, removed=removed)
