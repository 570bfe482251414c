"""Scene-level water evidence: NDWI/MNDWI for optical rasters, a bimodal split for radar.

Every prior is one :class:`WaterPrior`: a per-pixel *score* in physical units (an index value,
or backscatter in dB), ONE threshold for the whole scene, a soft width turning the distance to
the threshold into a water probability, and the record of how the threshold was found (for
``run.json``). The threshold is computed once per scene and every tile uses it.

Optical (``s2``, ``naip``): NDWI = (G - NIR) / (G + NIR) (McFeeters 1996; S2 B3, B8) or
MNDWI = (G - SWIR1) / (G + SWIR1) (Xu 2006; S2 B3, B11; the ``s2`` default, chosen from the
literature: SWIR separates water from wet soil and built-up land better than NIR, and one
labelled chip cannot choose). Water is above the threshold, 0 by
default (the index's natural split); ``threshold="otsu"`` / ``"ki"`` takes it from the
bimodal tiles as for radar, within :data:`PLAUSIBLE` (fallback 0).

Radar (``s1``, ``sar``): water is dark. The split-based approach of Martinis et al. (2009,
2015) and Chini et al. (2017, HSBA): the evidence is one polarisation in dB, the
cross-polarised band (VH, HV) when there is one, else the co-polarised (VV, HH). It is
despeckled (box mean of linear power, default 3x3 px, NaN-aware), cut into tiles (default
256 px); a tile is *bimodal* when at least half of it
is valid and a two-Gaussian mixture fitted to its histogram (EM from the Otsu split) has
both weights >= 10 % and Ashman's D >= 2 between its components, and the tile's Otsu split
lies in the polarisation's plausible range. (Ashman's D of the two halves of an Otsu split
is no test: a single Gaussian cut at its mean already scores 2.7.)
The scene threshold is Otsu's (or Kittler-Illingworth's minimum-error) threshold of the
pixels of all bimodal tiles pooled. Fallbacks, recorded in ``details["source"]``: no bimodal
tile, or a pooled threshold outside the plausible range -> the fixed threshold of
:data:`FALLBACK` (-15 dB VV, -20 dB VH; round values between the water and land modes of
backscatter over open water and land). A scene that is all water, or has none, has no
bimodal tile and therefore gets the fixed threshold, never a split of one class in two.
Relative (uncalibrated amplitude) evidence has no absolute range: every split is
plausible and the fallback is the minimum-error split of the whole scene. Last, water
regions smaller than a minimum mapping unit (default 64 px, 8-connected) are dropped: a
flooded area is not a speckle-sized blob. The defaults (polarisation, split method,
despeckle, tile, minimum area) were chosen by leave-one-chip-out cross-validation on the
Sen1Floods11 chips (``benchmarks/satellite_cv.py``).

:func:`bimodal_split` is the split alone, for any dB-like array (e.g. a log-ratio).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.logits import sigmoid
from geofloodsam.raster.sensors import SENSORS

INDICES = ("ndwi", "mndwi")
#: the radar water index: the bimodal split of :func:`radar_prior`
RADAR_INDEX = "radar-split"
#: the water indices a sensor class may name (``Sensor.water_index``) -> the band roles they
#: read: green and the other band of an optical index, the radar polarisations present
INDEX_ROLES = {"ndwi": ("green", "nir"), "mndwi": ("green", "swir1"),
               RADAR_INDEX: ("co", "cross")}
#: radar evidence: ``cross`` (VH, HV), ``co`` (VV, HH), ``both`` (their mean distance);
#: ``vh`` / ``vv`` are the Sentinel-1 names of cross / co
POLARISATIONS = ("cross", "co", "both", "vh", "vv")
POL_ALIASES = {"vh": "cross", "vv": "co"}
METHODS = ("otsu", "ki")
#: fixed fallback thresholds (index units or dB); ``relative``: none (the scene's own split)
FALLBACK = {"ndwi": 0.0, "mndwi": 0.0, "co": -15.0, "cross": -20.0,
            "vv": -15.0, "vh": -20.0}
#: a scene threshold outside these is rejected (fallback instead)
PLAUSIBLE = {"ndwi": (-0.3, 0.5), "mndwi": (-0.3, 0.5), "co": (-24.0, -10.0),
             "cross": (-30.0, -15.0), "vv": (-24.0, -10.0), "vh": (-30.0, -15.0)}
#: width of the soft transition (probability 0.27 / 0.73 at one width from the threshold)
SOFT_WIDTH = {"ndwi": 0.05, "mndwi": 0.05, "co": 1.0, "cross": 1.0, "vv": 1.0, "vh": 1.0}
#: tile selection
TILE = 256
MIN_VALID = 0.5
MIN_CLASS = 0.1
MIN_ASHMAN = 2.0
BINS = 256
#: radar defaults, chosen by leave-one-chip-out CV (benchmarks/satellite_cv.py)
DESPECKLE = 3
RADAR_METHOD = "ki"
RADAR_POLARISATION = "cross"
#: water regions under this many px are dropped (radar minimum mapping unit)
MIN_AREA = 64


@dataclass
class WaterPrior:
    """A scene's water evidence.

    Attributes:
        score: (H, W) float32 evidence in physical units (index, or dB); NaN where invalid.
        threshold: the scene threshold (same unit).
        width: soft width (same unit) of :attr:`probability`.
        water_below: True for radar (water darker than the threshold).
        method: e.g. ``ndwi``, ``mndwi``, ``sar-vh-otsu``.
        details: how the threshold was found (JSON-ready; ``source`` = ``tiles`` / ``fixed``).
    """

    score: np.ndarray
    threshold: float
    width: float
    water_below: bool
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    removed: np.ndarray | None = None  # (H, W) bool: below the threshold but under the MMU

    @property
    def valid(self) -> np.ndarray:
        """(H, W) bool: pixels with evidence."""
        return np.isfinite(self.score)

    def logits(self) -> np.ndarray:
        """(H, W) float32 signed distance to the threshold in widths (> 0 = water); 0 invalid."""
        d = (self.score - self.threshold) / self.width
        if self.water_below:
            d = -d
        if self.removed is not None:
            d = np.where(self.removed, -np.abs(d), d)
        return np.nan_to_num(d, nan=0.0).astype(np.float32)

    def probability(self) -> np.ndarray:
        """(H, W) float32 water probability, sigmoid of :meth:`logits` (0.5 where invalid)."""
        return sigmoid(self.logits())

    def water(self) -> np.ndarray:
        """(H, W) bool: water by the threshold alone (the ``--method index`` map)."""
        return (self.logits() > 0) & self.valid

    def confident(self, margin: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
        """(water, dry) bool masks at least ``margin`` widths from the threshold."""
        lg = self.logits()
        valid = self.valid
        return (lg >= margin) & valid, (lg <= -margin) & valid

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (for run.json)."""
        return {
            "method": self.method,
            "threshold": round(float(self.threshold), 4),
            "width": self.width,
            "water_below": self.water_below,
            **self.details,
        }


# ---------------------------------------------------------------------------- indices
def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b), float32; NaN where either is NaN or a + b <= 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    s = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(s > 0, (a - b) / np.where(s > 0, s, 1.0), np.nan)
    out[~(np.isfinite(a) & np.isfinite(b))] = np.nan
    return out.astype(np.float32)


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """McFeeters' NDWI (G - NIR) / (G + NIR)."""
    return normalized_difference(green, nir)


def mndwi(green: np.ndarray, swir1: np.ndarray) -> np.ndarray:
    """Xu's MNDWI (G - SWIR1) / (G + SWIR1)."""
    return normalized_difference(green, swir1)


# ---------------------------------------------------------------------------- thresholds
def _histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.percentile(values, [0.5, 99.5])
    if not hi > lo:
        hi = lo + 1e-6
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    return counts.astype(np.float64), 0.5 * (edges[:-1] + edges[1:])


def otsu_threshold(values: np.ndarray, bins: int = BINS) -> float:
    """Otsu's threshold (maximum between-class variance) of finite ``values``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        raise ValueError("Otsu needs at least 2 finite values")
    counts, centres = _histogram(v, bins)
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres)
    mu0 = m0 / np.maximum(w0, 1e-12)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1e-12)
    between = w0 * w1 * (mu0 - mu1) ** 2
    between[(w0 == 0) | (w1 == 0)] = -1
    k = int(np.argmax(between))
    return float(0.5 * (centres[k] + centres[min(k + 1, len(centres) - 1)]))


def ki_threshold(values: np.ndarray, bins: int = BINS) -> float:
    """Kittler-Illingworth minimum-error threshold of finite ``values`` (two Gaussians)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        raise ValueError("Kittler-Illingworth needs at least 2 finite values")
    counts, centres = _histogram(v, bins)
    p = counts / counts.sum()
    p0 = np.cumsum(p)
    p1 = 1.0 - p0
    m0 = np.cumsum(p * centres)
    s0 = np.cumsum(p * centres**2)
    mu0 = m0 / np.maximum(p0, 1e-12)
    mu1 = (m0[-1] - m0) / np.maximum(p1, 1e-12)
    var0 = s0 / np.maximum(p0, 1e-12) - mu0**2
    var1 = (s0[-1] - s0) / np.maximum(p1, 1e-12) - mu1**2
    ok = (p0 > 1e-6) & (p1 > 1e-6) & (var0 > 1e-12) & (var1 > 1e-12)
    j = np.full(p.shape, np.inf)
    j[ok] = 1 + (p0[ok] * np.log(var0[ok]) + p1[ok] * np.log(var1[ok])) - 2 * (
        p0[ok] * np.log(p0[ok]) + p1[ok] * np.log(p1[ok])
    )
    if not np.isfinite(j).any():
        return otsu_threshold(v, bins)
    k = int(np.argmin(j))
    return float(0.5 * (centres[k] + centres[min(k + 1, len(centres) - 1)]))


def split_threshold(values: np.ndarray, method: str = "otsu", bins: int = BINS) -> float:
    """``otsu`` or ``ki`` threshold of ``values``."""
    if method == "otsu":
        return otsu_threshold(values, bins)
    if method == "ki":
        return ki_threshold(values, bins)
    raise GeofloodsamError(f"threshold method {method!r}: use one of {', '.join(METHODS)}.")


def fit_two_gaussians(
    values: np.ndarray, iterations: int = 50, bins: int = BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-component Gaussian mixture fitted by EM to the histogram of ``values``.

    Initialised from the Otsu split. Returns (weights, means, stds), the darker first.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    counts, x = _histogram(v, bins)
    t = otsu_threshold(v, bins)
    lo = x <= t
    w = np.array([counts[lo].sum(), counts[~lo].sum()]) + 1e-9
    mu = np.array([(counts * x)[lo].sum(), (counts * x)[~lo].sum()]) / w
    var = np.array(
        [(counts * (x - mu[0]) ** 2)[lo].sum(), (counts * (x - mu[1]) ** 2)[~lo].sum()]
    ) / w
    floor = (x[1] - x[0]) ** 2 + 1e-12
    var = np.maximum(var, floor)
    w = w / w.sum()
    for _ in range(iterations):
        pdf = w[:, None] * np.exp(-0.5 * (x[None] - mu[:, None]) ** 2 / var[:, None])
        pdf /= np.sqrt(2 * np.pi * var[:, None])
        resp = pdf / np.maximum(pdf.sum(axis=0, keepdims=True), 1e-300)
        nk = (resp * counts).sum(axis=1) + 1e-9
        w = nk / nk.sum()
        mu = (resp * counts * x).sum(axis=1) / nk
        var = np.maximum((resp * counts * (x[None] - mu[:, None]) ** 2).sum(axis=1) / nk, floor)
    order = np.argsort(mu)
    return w[order], mu[order], np.sqrt(var[order])


def ashman_d(means: np.ndarray, stds: np.ndarray) -> float:
    """Ashman's D of two Gaussian components (> 2: a clean separation of two modes)."""
    return float(math.sqrt(2.0) * abs(means[1] - means[0]) / math.sqrt(stds[0] ** 2 + stds[1] ** 2))


def bimodal_tiles(
    score: np.ndarray,
    plausible: tuple[float, float],
    tile: int = TILE,
    min_valid: float = MIN_VALID,
    min_class: float = MIN_CLASS,
    min_ashman: float = MIN_ASHMAN,
) -> list[dict[str, Any]]:
    """The tiles of ``score`` (NaN = invalid) whose histogram is bimodal (module docstring).

    Returns one record per selected tile: ``row``, ``col`` (pixel offsets), its Otsu split,
    Ashman's D and the fraction below the split.
    """
    h, w = score.shape
    out = []
    for r in range(0, h, tile):
        for c in range(0, w, tile):
            block = score[r : r + tile, c : c + tile]
            finite = np.isfinite(block)
            if finite.mean() < min_valid or finite.sum() < 64:
                continue
            v = block[finite].astype(np.float64)
            weights, means, stds = fit_two_gaussians(v)
            if weights.min() < min_class:
                continue
            d = ashman_d(means, stds)
            t = otsu_threshold(v)
            if d < min_ashman or not (plausible[0] <= t <= plausible[1]):
                continue
            out.append({"row": r, "col": c, "split": round(t, 4), "ashman_d": round(d, 3),
                        "weights": [round(float(x), 3) for x in weights]})
    return out


def bimodal_split(
    score: np.ndarray,
    method: str = RADAR_METHOD,
    tile: int = TILE,
    plausible: tuple[float, float] | None = None,
    fallback: float | None = None,
    min_ashman: float = MIN_ASHMAN,
) -> tuple[float, dict[str, Any]]:
    """The split of a scene from its bimodal tiles (any dB-like or index array, NaN invalid).

    ``plausible``: a pooled split outside it is rejected (None: any split is plausible).
    ``fallback``: the threshold without bimodal tiles (None: ``method``'s split of the whole
    scene, for relative evidence without an absolute scale). Returns (threshold, details).
    """
    lo_hi = plausible or (-math.inf, math.inf)
    tiles = bimodal_tiles(score, lo_hi, tile, min_ashman=min_ashman)
    details: dict[str, Any] = {"threshold_method": method, "tile": tile,
                               "bimodal_tiles": len(tiles)}

    def fall(why: str) -> tuple[float, dict[str, Any]]:
        details["why"] = why
        if fallback is not None:
            details["source"] = "fixed"
            return float(fallback), details
        details["source"] = "scene"
        finite = score[np.isfinite(score)]
        return (split_threshold(finite, method) if finite.size >= 2 else 0.0), details

    if not tiles:
        return fall("no bimodal tile")
    pooled = np.concatenate(
        [score[t["row"] : t["row"] + tile, t["col"] : t["col"] + tile].ravel() for t in tiles]
    )
    t = split_threshold(pooled, method)
    if not (lo_hi[0] <= t <= lo_hi[1]):
        return fall(f"pooled split {t:.3g} outside {plausible}")
    details["source"] = "tiles"
    return t, details


def scene_threshold(
    score: np.ndarray,
    key: str,
    method: str = "otsu",
    tile: int = TILE,
    min_ashman: float = MIN_ASHMAN,
) -> tuple[float, dict[str, Any]]:
    """One threshold for the scene from its bimodal tiles, or the fixed fallback.

    ``key`` names the evidence (``co``, ``cross``, ``vv``, ``vh``, ``ndwi``, ``mndwi``) for
    the plausible range and the fallback, or ``relative`` (no range; the scene's own split).
    Returns (threshold, details).
    """
    if key == "relative":
        return bimodal_split(score, method, tile, min_ashman=min_ashman)
    return bimodal_split(score, method, tile, PLAUSIBLE[key], FALLBACK[key], min_ashman)


def small_regions(water: np.ndarray, min_area: int) -> np.ndarray:
    """(H, W) bool: the pixels of 8-connected regions of ``water`` under ``min_area`` px."""
    if min_area <= 1 or not water.any():
        return np.zeros(water.shape, dtype=bool)
    labels, _ = ndimage.label(water, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())
    small = sizes < min_area
    small[0] = False
    return small[labels]


# ---------------------------------------------------------------------------- priors
def optical_prior(
    green: np.ndarray,
    other: np.ndarray,
    index: str = "ndwi",
    threshold: float | str = 0.0,
    tile: int = TILE,
) -> WaterPrior:
    """NDWI (``other`` = NIR) or MNDWI (``other`` = SWIR1) prior; water above the threshold.

    ``threshold``: a number (default 0), or ``otsu`` / ``ki`` for a scene-level split of the
    bimodal tiles (fallback 0).
    """
    if index not in INDICES:
        raise GeofloodsamError(f"index {index!r}: use one of {', '.join(INDICES)}.")
    score = normalized_difference(green, other)
    if isinstance(threshold, str):
        t, details = scene_threshold(score, index, threshold, tile)
    else:
        t, details = float(threshold), {"source": "fixed", "why": "given"}
    return WaterPrior(score, t, SOFT_WIDTH[index], False, index, details)


def despeckle_db(db: np.ndarray, size: int = DESPECKLE) -> np.ndarray:
    """Box mean of linear power over ``size`` x ``size`` px, back in dB; NaN-aware.

    Pixels that are NaN stay NaN; their neighbours average only valid values. ``size`` <= 1
    returns a copy.
    """
    db = np.asarray(db, dtype=np.float64)
    if size <= 1:
        return db.copy()
    finite = np.isfinite(db)
    lin = np.where(finite, 10.0 ** (np.where(finite, db, 0.0) / 10.0), 0.0)
    num = ndimage.uniform_filter(lin, size, mode="nearest")
    den = ndimage.uniform_filter(finite.astype(np.float64), size, mode="nearest")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(num / den)
    out[~finite] = np.nan
    return out


def radar_prior(
    bands: dict[str, np.ndarray | None],
    polarisation: str = RADAR_POLARISATION,
    method: str = RADAR_METHOD,
    despeckle: int = DESPECKLE,
    tile: int = TILE,
    min_area: int = MIN_AREA,
    relative: bool = False,
    min_ashman: float = MIN_ASHMAN,
) -> WaterPrior:
    """Radar prior from ``co`` and/or ``cross`` bands in dB: water below the scene split.

    ``polarisation``: ``cross`` (default; the co band when there is no cross band), ``co``
    (the cross band when there is no co band), or ``both`` (the two bands' signed distances
    to their own thresholds, in widths, averaged). ``relative``: the dB values have no
    absolute scale (uncalibrated amplitude): no plausible range, the scene's own split as
    fallback. Water regions under ``min_area`` px are dropped (:attr:`WaterPrior.removed`).
    """
    if polarisation not in POLARISATIONS:
        raise GeofloodsamError(
            f"polarisation {polarisation!r}: use one of {', '.join(POLARISATIONS)}."
        )
    pol = POL_ALIASES.get(polarisation, polarisation)
    present = [k for k in ("cross", "co") if bands.get(k) is not None]
    if not present:
        raise GeofloodsamError("a radar prior needs a co- or cross-polarised band.")
    keys = tuple(present) if pol == "both" else ((pol,) if pol in present else (present[0],))
    parts, details = [], {"despeckle": despeckle, "min_area": min_area, "min_ashman": min_ashman,
                          "polarisation": "+".join(keys), "relative": relative}
    for key in keys:
        score = despeckle_db(bands[key], despeckle).astype(np.float32)
        t, d = scene_threshold(score, "relative" if relative else key, method, tile,
                               min_ashman)
        details[key] = {"threshold": round(float(t), 3), **d}
        parts.append((score, t, SOFT_WIDTH[key]))
    name = f"sar-{'-'.join(keys) if pol != 'both' else 'both'}-{method}"
    if len(parts) == 1:
        score, t, width = parts[0]
    else:  # both: mean signed distance (in widths) to each band's own threshold
        score = np.mean([(s - t) / wd for s, t, wd in parts], axis=0).astype(np.float32)
        t, width = 0.0, 1.0
    removed = small_regions((score < t) & np.isfinite(score), min_area)
    return WaterPrior(score, float(t), width, True, name, details, removed)


def sar_prior(
    vv_db: np.ndarray | None,
    vh_db: np.ndarray | None,
    polarisation: str = RADAR_POLARISATION,
    method: str = RADAR_METHOD,
    despeckle: int = DESPECKLE,
    tile: int = TILE,
    min_area: int = MIN_AREA,
) -> WaterPrior:
    """Sentinel-1 prior from VV (co) and VH (cross) in dB (:func:`radar_prior`)."""
    return radar_prior({"co": vv_db, "cross": vh_db}, polarisation, method, despeckle, tile,
                       min_area)


def sensor_index(info) -> str | None:
    """The water index the sensor of ``info`` declares (``Sensor.water_index``: a key of
    :data:`INDEX_ROLES`), None for a sensor without one (``rgb``)."""
    index = SENSORS[info.sensor].water_index
    if index is not None and index not in INDEX_ROLES:
        raise GeofloodsamError(
            f"sensor {info.sensor} names the water index {index!r}: use one of "
            f"{', '.join(INDEX_ROLES)}."
        )
    return index


def prior_for(info, bands: dict[str, np.ndarray], **options: Any) -> WaterPrior | None:
    """The default prior of a sensor (see :mod:`geofloodsam.raster.sensors`) from physical bands.

    ``bands`` maps roles (``green``, ``nir``, ``swir1``, ``co``, ``cross``) to physical
    arrays (reflectance, dB). The sensor's ``water_index`` (:func:`sensor_index`) decides:
    ``mndwi`` (``s2``) or ``ndwi`` (``naip``), another optical one with ``index=``;
    ``radar-split`` (``s1`` / ``sar``): :func:`radar_prior` (relative for uncalibrated
    amplitude); none (``rgb``): None (no water index without NIR/SWIR/radar).
    """
    index = sensor_index(info)
    if index is None:
        return None
    if index == RADAR_INDEX:
        options.setdefault("relative", bool(getattr(info, "relative", False)))
        return radar_prior({k: bands.get(k) for k in INDEX_ROLES[RADAR_INDEX]}, **options)
    index = options.pop("index", index)
    if index not in INDICES:
        raise GeofloodsamError(f"index {index!r}: use one of {', '.join(INDICES)}.")
    green, other = INDEX_ROLES[index]
    return optical_prior(bands[green], bands[other], index, **options)
