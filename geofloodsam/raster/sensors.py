"""Sensor detection and fixed physical composites for satellite rasters.

:func:`detect_sensor` looks at an open rasterio dataset (band count, data type, band
descriptions) and a cheap decimated sample of its values, and returns a :class:`SensorInfo`:
the sensor, a reason string for ``run.json``, the bands of the composite and of the water
indices, and how raw values become physical units. Recognised layouts:

* ``s2``: Sentinel-2 L1C (13 bands B1 B2 B3 B4 B5 B6 B7 B8 B8A B9 B10 B11 B12) or L2A
  (12 bands, no B10), or any raster whose band descriptions name B2, B3, B4, B8 and B11.
  Integer data are reflectance x 10000; float data with a median under 1.5 are reflectance.
  The L2A ``BOA_ADD_OFFSET`` (-1000 DN from processing baseline 04.00) is not in the file's
  metadata here and is not applied: it shifts reflectance by 0.1 (see ``docs/satellite.md``).
* ``s1``: Sentinel-1 GRD backscatter, 2 float bands VV and VH (descriptions ``VV``/``VH``
  pick the order, else band 1 is VV), in dB (mostly negative, median -40..+10) or in linear
  power (non-negative, median below 1); which one is detected from the values and stated.
* ``naip``: 4 bands R, G, B, NIR (NAIP order).
* ``rgb``: 3 bands (or 1, repeated as grey; or more than 4 without a known layout, bands
  1-3).

Each sensor's composite (:func:`make_composite`) maps physical values through FIXED ranges
(reflectance for optical, dB for radar), the same for every scene and every tile, so tiles of
one scene, and scenes of one sensor, share one contrast:

* ``s2`` ``swir`` (default): R = B11, G = B8, B = B4, reflectance 0-0.4 (the false-colour
  look of many Earth Surface Water scenes the satellite decoder is trained on; water is dark);
  ``true``: B4, B3, B2, reflectance 0-0.3.
* ``s1``: R = VV in -25..0 dB, G = VH in -30..-5 dB, B = VV - VH in 0..15 dB.
* ``naip`` / ``rgb``: uint8 as is (0-255); other data types use the 2nd-98th percentile of
  the detection sample (one stretch per scene, flagged ``physical: false``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.values import check_dtypes, fill_pixels

SENSORS = ("s2", "s1", "naip", "rgb")
SENSOR_CHOICES = ("auto", *SENSORS)
#: sensors whose SAM input is the fixed physical composite of :func:`make_composite`
COMPOSITE_SENSORS = ("s1", "s2")
S2_L1C = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S2_L2A = tuple(b for b in S2_L1C if b != "B10")
#: the S2 bands every composite and index needs
S2_REQUIRED = ("B2", "B3", "B4", "B8", "B11")
#: S2 composites: band names and fixed reflectance ranges per channel
S2_COMPOSITES = {
    "swir": (("B11", "B8", "B4"), ((0.0, 0.4), (0.0, 0.4), (0.0, 0.4))),
    "true": (("B4", "B3", "B2"), ((0.0, 0.3), (0.0, 0.3), (0.0, 0.3))),
}
S2_DEFAULT_COMPOSITE = "swir"
#: S1 composite: VV, VH, VV - VH, fixed dB ranges
S1_RANGES = ((-25.0, 0.0), (-30.0, -5.0), (0.0, 15.0))
NAIP_COMPOSITES = {"true": (1, 2, 3), "nir": (4, 1, 2)}
#: side (px) of the decimated sample read for detection
SAMPLE_SIDE = 256
_S2_NAME = re.compile(r"^\s*(?:S2[_ ]?)?B0?(\d{1,2})(A?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SensorInfo:
    """What :func:`detect_sensor` found, and how to turn the raster into a composite.

    Attributes:
        sensor: ``s2``, ``s1``, ``naip`` or ``rgb``.
        reason: one sentence for ``run.json``: what was seen and what was decided.
        composite_bands: 1-based bands read for the composite, in channel order (for ``s1``
            the VV and VH bands; the third channel is computed).
        composite_ranges: fixed (low, high) per channel in physical units.
        index_bands: role -> 1-based band: ``green``, ``nir``, ``swir1`` (optical) or
            ``vv``, ``vh`` (radar); empty for ``rgb``.
        scale: raw value x scale = reflectance (optical); 1 for dB radar and uint8 imagery.
        radar_scale: ``db`` or ``linear`` (S1 only; linear is converted to dB).
        composite: the composite's name (``swir``, ``true``, ``vv-vh-ratio``, ...).
        physical: False when the stretch comes from the scene's values (non-uint8 RGB/NAIP).
    """

    sensor: str
    reason: str
    composite_bands: tuple[int, ...]
    composite_ranges: tuple[tuple[float, float], ...]
    index_bands: dict[str, int] = field(default_factory=dict)
    scale: float = 1.0
    radar_scale: str | None = None
    composite: str = "true"
    physical: bool = True

    def to_dict(self) -> dict:
        """JSON-ready record (for run.json)."""
        out = asdict(self)
        out["composite_bands"] = list(self.composite_bands)
        out["composite_ranges"] = [list(r) for r in self.composite_ranges]
        return out

    @classmethod
    def from_dict(cls, record: dict) -> SensorInfo:
        """Inverse of :meth:`to_dict`."""
        fields = dict(record)
        fields["composite_bands"] = tuple(fields["composite_bands"])
        fields["composite_ranges"] = tuple(tuple(r) for r in fields["composite_ranges"])
        return cls(**fields)

    @property
    def uses_composite(self) -> bool:
        """Whether SAM sees this sensor's fixed physical composite (``s1``, ``s2``) rather
        than bands 1-3 through the usual stretch (``naip``, ``rgb``: the same picture)."""
        return self.sensor in COMPOSITE_SENSORS

    @property
    def read_bands(self) -> tuple[int, ...]:
        """Every 1-based band needed for the composite and the indices, sorted."""
        return tuple(sorted({*self.composite_bands, *self.index_bands.values()}))


# ---------------------------------------------------------------------------- helpers
def s2_band_name(text: str | None) -> str | None:
    """Canonical Sentinel-2 band name (``B8A``, ``B11``) of a description, or None."""
    if not text:
        return None
    m = _S2_NAME.match(text)
    if not m:
        return None
    name = f"B{int(m.group(1))}{m.group(2).upper()}"
    return name if name in S2_L1C else None


def _describe(ds) -> str:
    """'13 bands int16 (descriptions B1, B2, ...)' for error messages and reasons."""
    dtypes = sorted(set(ds.dtypes))
    text = f"{ds.count} band{'s' if ds.count != 1 else ''} {'/'.join(dtypes)}"
    desc = [d for d in (ds.descriptions or ()) if d]
    if desc:
        shown = ", ".join(desc[:6]) + (", ..." if len(desc) > 6 else "")
        text += f" (descriptions {shown})"
    return text


def sample_bands(ds, bands: Sequence[int], side: int = SAMPLE_SIDE) -> np.ndarray:
    """A decimated read of ``bands`` (at most ``side`` px a side), float64, NaN where invalid."""
    h = max(1, min(side, ds.height))
    w = max(1, min(side, ds.width))
    data = ds.read(list(bands), out_shape=(len(bands), h, w), masked=True)
    out = np.ma.getdata(data).astype(np.float64)
    out[np.ma.getmaskarray(data) | fill_pixels(out)] = np.nan
    return out


def _s2_layout(ds) -> tuple[dict[str, int], str] | None:
    """Band name -> 1-based index of an S2 raster, with how it was found, or None."""
    names = [s2_band_name(d) for d in (ds.descriptions or ())]
    by_desc = {n: i + 1 for i, n in enumerate(names) if n}
    if all(b in by_desc for b in S2_REQUIRED):
        return by_desc, "band descriptions name the Sentinel-2 bands"
    if ds.count == 13:
        return {b: i + 1 for i, b in enumerate(S2_L1C)}, "13 bands: Sentinel-2 L1C order B1..B12"
    if ds.count == 12:
        return {b: i + 1 for i, b in enumerate(S2_L2A)}, "12 bands: Sentinel-2 L2A order (no B10)"
    return None


def _radar_scale(values: np.ndarray) -> str | None:
    """``db``, ``linear`` or None (neither) from finite backscatter values."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    med = float(np.median(v))
    if v.min() >= 0 and med < 1.0 and np.percentile(v, 99) < 20:
        return "linear"
    if -40.0 <= med <= 10.0 and (v < 0).mean() > 0.5:
        return "db"
    return None


def _percentile_ranges(values: np.ndarray) -> tuple[tuple[float, float], ...]:
    out = []
    for band in values:
        v = band[np.isfinite(band)]
        lo, hi = (np.percentile(v, [2, 98]) if v.size else (0.0, 1.0))
        out.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    return tuple(out)


# ---------------------------------------------------------------------------- detection
def detect_sensor(ds, sensor: str = "auto", composite: str | None = None) -> SensorInfo:
    """Detect (``auto``) or check (forced ``sensor``) the sensor of an open rasterio dataset.

    Args:
        ds: an open rasterio dataset.
        sensor: ``auto`` or one of :data:`SENSORS`; a forced sensor whose band layout does not
            fit raises a one-line :class:`GeofloodsamError` naming what was found.
        composite: ``swir`` / ``true`` for ``s2``, ``true`` / ``nir`` for ``naip``; default
            per sensor.
    """
    if sensor not in SENSOR_CHOICES:
        raise GeofloodsamError(f"--sensor {sensor}: use one of {', '.join(SENSOR_CHOICES)}.")
    name = getattr(ds, "name", "the raster")
    check_dtypes(name, ds.dtypes)  # before any value is read (complex: no values to compare)
    found = _describe(ds)
    float_data = all(np.issubdtype(np.dtype(d), np.floating) for d in ds.dtypes)
    if sensor in ("auto", "s2"):
        layout = _s2_layout(ds)
        if layout is not None:
            return _s2_info(ds, layout, found, composite)
        if sensor == "s2":
            raise GeofloodsamError(
                f"--sensor s2 needs 12-13 Sentinel-2 bands (B1..B12, B8A) or band descriptions "
                f"naming {', '.join(S2_REQUIRED)}; {name} has {found}."
            )
    if sensor in ("auto", "s1") and ds.count == 2:
        if float_data:
            return _s1_info(ds, found, name)
        if sensor == "s1":
            raise GeofloodsamError(
                f"--sensor s1 needs 2 float bands VV, VH (dB or linear power); {name} has {found}."
            )
    if sensor == "s1":
        raise GeofloodsamError(
            f"--sensor s1 needs 2 float bands VV, VH (dB or linear power); {name} has {found}."
        )
    if sensor in ("auto", "naip") and ds.count == 4:
        return _rgb_info(ds, "naip", found, composite)
    if sensor == "naip":
        raise GeofloodsamError(f"--sensor naip needs 4 bands R, G, B, NIR; {name} has {found}.")
    if ds.count == 2:  # not Sentinel-1: bands as chosen by --bands (the scene says so)
        return plain_info(ds, f"RGB: {found}; 2 bands, not float: not Sentinel-1; --bands "
                          "chooses what SAM sees")
    return _rgb_info(ds, "rgb", found, composite)


def plain_info(ds, reason: str) -> SensorInfo:
    """An ``rgb`` :class:`SensorInfo` for a raster read through ``--bands`` as usual."""
    return SensorInfo(sensor="rgb", reason=reason, composite_bands=(1, 1, 1),
                      composite_ranges=((0.0, 255.0),) * 3, physical=False)


def _s2_info(ds, layout, found: str, composite: str | None) -> SensorInfo:
    bands, how = layout
    composite = composite or S2_DEFAULT_COMPOSITE
    if composite not in S2_COMPOSITES:
        raise GeofloodsamError(
            f"composite {composite!r} for s2: use one of {', '.join(S2_COMPOSITES)}."
        )
    names, ranges = S2_COMPOSITES[composite]
    integer = not all(np.issubdtype(np.dtype(d), np.floating) for d in ds.dtypes)
    if integer:
        scale, unit = 1e-4, "integer DN = reflectance x 10000"
    else:
        sample = sample_bands(ds, [bands["B3"]])
        med = float(np.nanmedian(sample)) if np.isfinite(sample).any() else 0.0
        scale, unit = (1.0, "float reflectance") if med < 1.5 else (1e-4, "float DN x 10000")
    return SensorInfo(
        sensor="s2",
        reason=f"Sentinel-2: {found}; {how}; {unit}; composite {composite}",
        composite_bands=tuple(bands[n] for n in names),
        composite_ranges=ranges,
        index_bands={"green": bands["B3"], "red": bands["B4"], "nir": bands["B8"],
                     "swir1": bands["B11"]},
        scale=scale,
        composite=composite,
    )


def _s1_info(ds, found: str, name: str) -> SensorInfo:
    desc = [(d or "").strip().upper() for d in (ds.descriptions or (None, None))]
    if "VV" in desc and "VH" in desc:
        vv, vh = desc.index("VV") + 1, desc.index("VH") + 1
        order = "descriptions VV/VH"
    else:
        vv, vh, order = 1, 2, "no VV/VH descriptions: band 1 taken as VV, band 2 as VH"
    sample = sample_bands(ds, [vv, vh])
    if not np.isfinite(sample).any():
        scale = "db"
        how = "no valid sample value (all nodata/NaN): dB assumed"
    else:
        scale = _radar_scale(sample[0])
        if scale is None or _radar_scale(sample[1]) not in (scale, None):
            v = sample[np.isfinite(sample)]
            raise GeofloodsamError(
                f"{name} ({found}) does not look like Sentinel-1 backscatter in dB (mostly "
                f"negative) nor in linear power (non-negative, median < 1): values "
                f"{v.min():.3g}..{v.max():.3g}, median {np.median(v):.3g}; convert it to dB."
            )
        med = float(np.nanmedian(sample[0]))
        how = f"VV median {med:.3g} -> {'dB' if scale == 'db' else 'linear power'}"
    return SensorInfo(
        sensor="s1",
        reason=f"Sentinel-1: {found}; {order}; {how}",
        composite_bands=(vv, vh),
        composite_ranges=S1_RANGES,
        index_bands={"vv": vv, "vh": vh},
        radar_scale=scale,
        composite="vv-vh-ratio",
    )


def _rgb_info(ds, sensor: str, found: str, composite: str | None) -> SensorInfo:
    if sensor == "naip":
        composite = composite or "true"
        if composite not in NAIP_COMPOSITES:
            raise GeofloodsamError(
                f"composite {composite!r} for naip: use one of {', '.join(NAIP_COMPOSITES)}."
            )
        bands = NAIP_COMPOSITES[composite]
        index = {"green": 2, "red": 1, "nir": 4}
        what = "4 bands taken as R, G, B, NIR (NAIP order)"
    else:
        composite = "true"
        bands = (1, 1, 1) if ds.count == 1 else (1, 2, 3)
        index = {}
        what = "1 band repeated as grey" if ds.count == 1 else "bands 1, 2, 3 as R, G, B"
    if all(d == "uint8" for d in ds.dtypes):
        ranges, physical, how = ((0.0, 255.0),) * 3, True, "uint8 used as is"
    else:
        ranges = _percentile_ranges(sample_bands(ds, bands))
        physical, how = False, "not uint8: 2-98 percentile stretch of the scene sample"
    return SensorInfo(
        sensor=sensor,
        reason=f"{sensor.upper()}: {found}; {what}; {how}",
        composite_bands=bands,
        composite_ranges=ranges,
        index_bands=index,
        composite=composite,
        physical=physical,
    )


# ---------------------------------------------------------------------------- composites
def to_db(linear: np.ndarray) -> np.ndarray:
    """Linear backscatter power -> dB (non-positive values become NaN)."""
    x = np.asarray(linear, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, 10.0 * np.log10(np.where(x > 0, x, 1.0)), np.nan)


def physical(raw: np.ndarray, info: SensorInfo) -> np.ndarray:
    """Raw band values -> physical units (reflectance, or dB for radar), float64."""
    x = np.asarray(raw, dtype=np.float64)
    if info.sensor == "s1":
        return to_db(x) if info.radar_scale == "linear" else x
    return x * info.scale


def make_composite(raw: np.ndarray, info: SensorInfo) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(B, H, W)`` values of ``info.composite_bands`` -> (HxWx3 uint8, valid HxW).

    The stretch is the sensor's fixed physical one (``info.composite_ranges``): values outside
    the range are clipped. Pixels with a NaN in any band are invalid and black.
    """
    x = physical(raw, info)
    if x.ndim == 2:
        x = x[None]
    if x.shape[0] != len(info.composite_bands):
        raise ValueError(f"expected {len(info.composite_bands)} bands, got {x.shape[0]}")
    if info.sensor == "s1":
        x = np.stack([x[0], x[1], x[0] - x[1]])
    valid = np.isfinite(x).all(axis=0)
    lows = np.array([r[0] for r in info.composite_ranges])[:, None, None]
    highs = np.array([r[1] for r in info.composite_ranges])[:, None, None]
    y = (np.nan_to_num(x, nan=0.0) - lows) * (255.0 / (highs - lows))
    y = np.clip(y, 0.0, 255.0) + 0.5
    rgb = np.moveaxis(y.astype(np.uint8), 0, -1)
    rgb[~valid] = 0
    return np.ascontiguousarray(rgb), valid


def read_bands(ds, bands: Sequence[int], window=None) -> np.ndarray:
    """``(B, h, w)`` float64 of 1-based ``bands`` in ``window``, NaN where nodata/masked."""
    data = ds.read(list(bands), window=window, masked=True)
    out = np.ma.getdata(data).astype(np.float64)
    out[np.ma.getmaskarray(data)] = np.nan
    return out


def read_composite(ds, info: SensorInfo, window=None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (default: all) of ``ds`` and return (HxWx3 uint8 composite, valid)."""
    return make_composite(read_bands(ds, info.composite_bands, window), info)


class SensorStretch:
    """A sensor's fixed composite as a scene stretch: what every tile of the scene is read
    through (the same interface as :class:`geofloodsam.raster.scene.Stretch`)."""

    def __init__(self, info: SensorInfo) -> None:
        self.info = info
        ranges = ", ".join(f"{lo:g}..{hi:g}" for lo, hi in info.composite_ranges)
        unit = "dB" if info.sensor == "s1" else "reflectance"
        self.method = f"sensor {info.sensor} composite {info.composite} ({unit} {ranges})"

    def apply(self, data: np.ndarray) -> np.ndarray:
        """(B, h, w) raw values of ``info.composite_bands`` -> (h, w, 3) uint8 composite."""
        return make_composite(data, self.info)[0]

    def to_dict(self) -> dict:
        """JSON-ready record (for run.json and tile tasks)."""
        return {"method": self.method, "sensor": self.info.to_dict()}

    @classmethod
    def from_dict(cls, record: dict) -> SensorStretch:
        """Inverse of :meth:`to_dict`."""
        return cls(SensorInfo.from_dict(record["sensor"]))
