"""Sensor detection and fixed physical composites for satellite rasters.

Each sensor is one class in the registry :data:`SENSORS` (see
:mod:`geofloodsam.raster.sensor_registry`: declarative attributes and a detection rule):
:class:`Sentinel2`, :class:`Sentinel1`, :class:`Sar`, :class:`Naip` and :class:`Rgb`, in
detection order. :func:`detect_sensor` looks at an open rasterio dataset (band count, data
type, band descriptions) and a cheap decimated sample of its values, asks each class in turn
(``auto``) or the one forced, and returns a :class:`SensorInfo`: the sensor, a reason string
for ``run.json``, the bands of the composite and of the water indices, and how raw values
become physical units. Recognised layouts:

* ``s2``: Sentinel-2 L1C (13 bands B1 B2 B3 B4 B5 B6 B7 B8 B8A B9 B10 B11 B12) or L2A
  (12 bands, no B10), or any raster whose band descriptions name B2, B3, B4, B8 and B11.
  Integer data are reflectance x 10000; float data with a median under 1.5 are reflectance.
  The L2A ``BOA_ADD_OFFSET`` (-1000 DN from processing baseline 04.00) is not in the file's
  metadata here and is not applied: it shifts reflectance by 0.1 (see ``docs/satellite.md``).
  The L2A offset is applied (reflectance = (DN + offset) / 10000) when the metadata has a
  ``BOA_ADD_OFFSET`` tag, or when ``--s2-offset`` gives it (``s2-offset=`` in the sensor
  spec, :func:`sensor_spec`); ``SensorInfo.offset`` records it.
* ``s1``: Sentinel-1 GRD backscatter: 2 float bands VV and VH (descriptions ``VV``/``VH``
  pick the order, else band 1 is VV), or one band whose description is ``VV`` or ``VH``.
* ``sar``: single- or dual-polarisation SAR of any mission: one band (forced with
  ``--sensor sar``, or described HH / HV / VV / VH), or two bands described HH and HV
  (handled like VV and VH). Radar units (``--sar-units auto|db|power|amplitude``, auto from
  the band metadata, then the values): dB (mostly negative, median -40..+10), linear power
  (non-negative float, median below 1), amplitude (integer DN, or non-negative float with a
  median of 1 or more: relative amplitude, 20 log10 of it is dB up to an unknown
  calibration constant, so the split is the scene's own, ``SensorInfo.relative``); values
  that fit none are a one-line error naming their range. Co-polarised bands (VV, HH) have
  the role ``co``, cross-polarised (VH, HV) ``cross``.
* ``naip``: 4 bands R, G, B, NIR (NAIP order).
* ``rgb``: 3 bands (or 1, repeated as grey; or more than 4 without a known layout, bands
  1-3).

Each sensor's composite (:func:`make_composite`) maps physical values through FIXED ranges
(reflectance for optical, dB for radar), the same for every scene and every tile, so tiles of
one scene, and scenes of one sensor, share one contrast:

* ``s2`` ``swir`` (default): R = B11, G = B8, B = B4, reflectance 0-0.4 (the false-colour
  look of many Earth Surface Water scenes the satellite decoder is trained on; water is dark);
  ``true``: B4, B3, B2, reflectance 0-0.3.
* ``s1`` / ``sar``: R = co (VV, HH) in -25..0 dB, G = cross (VH, HV) in -30..-5 dB, B = co -
  cross in 0..15 dB; one band: grey (co -25..0 dB, cross -30..-5 dB; relative amplitude:
  the 2-98 percentiles of the scene sample).
* ``naip`` / ``rgb``: uint8 as is (0-255); other data types use the 2nd-98th percentile of
  the detection sample (one stretch per scene, flagged ``physical: false``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.radar_units import (
    SAR_UNITS,
    calibrated_amplitude,
    radar_units,
    to_db_from,
)
from geofloodsam.raster.sensor_registry import Sensor, SensorRegistry
from geofloodsam.raster.values import check_dtypes, sample_bands

#: the sensors, in detection order (the classes below register themselves)
SENSORS = SensorRegistry()
#: radar polarisation names -> role
POLARISATION_ROLES = {"VV": "co", "HH": "co", "VH": "cross", "HV": "cross"}
_POL_NAME = re.compile(r"(?<![A-Z])(VV|VH|HH|HV)(?![A-Z])")
#: one-band radar composite ranges (dB) by role
RADAR_GREY = {"co": (-25.0, 0.0), "cross": (-30.0, -5.0)}
S2_L1C = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S2_L2A = tuple(b for b in S2_L1C if b != "B10")
#: the S2 bands every composite and index needs
S2_REQUIRED = ("B2", "B3", "B4", "B8", "B11")
#: radar composite: co, cross, co - cross, fixed dB ranges
S1_RANGES = ((-25.0, 0.0), (-30.0, -5.0), (0.0, 15.0))
_S2_NAME = re.compile(r"^\s*(?:S2[_ ]?)?B0?(\d{1,2})(A?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SensorInfo:
    """What :func:`detect_sensor` found, and how to turn the raster into a composite.

    Attributes:
        sensor: a registered sensor's name (:data:`SENSORS`: ``s2``, ``s1``, ``sar``,
            ``naip``, ``rgb``).
        reason: one sentence for ``run.json``: what was seen and what was decided.
        composite_bands: 1-based bands read for the composite, in channel order (for ``s1``
            the VV and VH bands; the third channel is computed).
        composite_ranges: fixed (low, high) per channel in physical units.
        index_bands: role -> 1-based band: ``green``, ``nir``, ``swir1`` (optical) or
            ``vv``, ``vh`` (radar); empty for ``rgb``.
        scale: (raw value + offset) x scale = reflectance (optical); 1 for radar and uint8.
        radar_scale: radar units ``db``, ``power`` or ``amplitude`` (converted to dB).
        composite: the composite's name (``swir``, ``true``, ``vv-vh-ratio``, ...).
        physical: False when the stretch comes from the scene's values (non-uint8 RGB/NAIP,
            relative amplitude).
        offset: S2 L2A ``BOA_ADD_OFFSET`` in DN (0 when none).
        relative: radar dB without an absolute scale (uncalibrated amplitude DN).
        units_how: how the radar units were found (``metadata``, ``values``, ``forced``).
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
    offset: float = 0.0
    relative: bool = False
    units_how: str | None = None

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
    def sensor_class(self) -> type[Sensor]:
        """The registered sensor class (:data:`SENSORS`)."""
        return SENSORS[self.sensor]

    @property
    def uses_composite(self) -> bool:
        """Whether SAM sees this sensor's fixed physical composite (``s1``, ``s2``, ``sar``)
        rather than bands 1-3 through the usual stretch (``naip``, ``rgb``: the same picture)."""
        return self.sensor_class.fixed_composite

    @property
    def is_radar(self) -> bool:
        """Whether this is radar backscatter (``s1``, ``sar``)."""
        return self.sensor_class.radar

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


def _percentile_ranges(values: np.ndarray) -> tuple[tuple[float, float], ...]:
    out = []
    for band in values:
        v = band[np.isfinite(band)]
        lo, hi = (np.percentile(v, [2, 98]) if v.size else (0.0, 1.0))
        out.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    return tuple(out)


# ---------------------------------------------------------------------------- detection
def sensor_spec(sensor: str = "auto", sar_units: str = "auto", s2_offset: str | None = None) -> str:
    """One string for ``--sensor``, ``--sar-units`` and ``--s2-offset`` (what configs, tile
    tasks and run.json carry): ``sensor`` alone when the others are their defaults, else
    e.g. ``sar|sar-units=amplitude`` or ``auto|s2-offset=-1000``."""
    parts = [sensor]
    if sar_units and sar_units != "auto":
        parts.append(f"sar-units={sar_units}")
    if s2_offset not in (None, "auto"):
        parts.append(f"s2-offset={s2_offset}")
    return "|".join(parts)


def parse_sensor_spec(spec: str) -> tuple[str, str, str]:
    """Inverse of :func:`sensor_spec`: (sensor, sar_units, s2_offset); one-line errors."""
    sensor, *rest = str(spec).split("|")
    options = {"sar-units": "auto", "s2-offset": "auto"}
    for item in rest:
        key, _, value = item.partition("=")
        if key not in options:
            raise GeofloodsamError(f"sensor option {key!r}: use sar-units= or s2-offset=.")
        options[key] = value
    if sensor not in SENSORS.choices():
        raise GeofloodsamError(f"--sensor {sensor}: use one of {', '.join(SENSORS.choices())}.")
    if options["sar-units"] not in SAR_UNITS:
        raise GeofloodsamError(
            f"--sar-units {options['sar-units']}: use one of {', '.join(SAR_UNITS)}."
        )
    return sensor, options["sar-units"], options["s2-offset"]


def base_sensor(spec: str) -> str:
    """The sensor name of a sensor spec (``sar|sar-units=db`` -> ``sar``)."""
    return str(spec).split("|")[0]


def _polarisations(ds) -> list[str | None]:
    """The polarisation (VV, VH, HH, HV) each band's description names, or None."""
    out = []
    for d in ds.descriptions or (None,) * ds.count:
        found = _POL_NAME.findall((d or "").upper())
        out.append(found[0] if len(set(found)) == 1 else None)
    return out


@dataclass(frozen=True)
class Probe:
    """What detection sees of a raster once, for every sensor's rule to look at.

    Attributes:
        name: the raster's name (for messages).
        found: ``'13 bands int16 (descriptions B1, ...)'`` (reasons and errors).
        float_data: every band is a float type.
        polarisations: the polarisation each band's description names (None: none).
        described: 1-2 bands, each naming a different polarisation.
        sar_units: ``--sar-units``; s2_offset: ``--s2-offset``; composite: the composite asked.
    """

    name: str
    found: str
    float_data: bool
    polarisations: list[str | None]
    described: bool
    sar_units: str = "auto"
    s2_offset: str = "auto"
    composite: str | None = None

    @classmethod
    def of(cls, ds, sar_units: str = "auto", s2_offset: str = "auto",
           composite: str | None = None) -> Probe:
        """Probe an open rasterio dataset (band metadata only, no values)."""
        pols = _polarisations(ds)
        described = ds.count in (1, 2) and all(pols) and len(set(pols)) == ds.count
        float_data = all(np.issubdtype(np.dtype(d), np.floating) for d in ds.dtypes)
        return cls(getattr(ds, "name", "the raster"), _describe(ds), float_data, pols,
                   described, sar_units, s2_offset, composite)


def detect_sensor(ds, sensor: str = "auto", composite: str | None = None) -> SensorInfo:
    """Detect (``auto``) or check (forced ``sensor``) the sensor of an open rasterio dataset.

    ``auto`` asks every sensor of :data:`SENSORS` in order, and the first whose rule
    recognises the raster wins (``rgb``, the catch-all, is last); a forced sensor asks only
    that one.

    Args:
        ds: an open rasterio dataset.
        sensor: ``auto`` or a name of :data:`SENSORS`, optionally a spec of
            :func:`sensor_spec` (``sar|sar-units=amplitude``); a forced sensor whose band
            layout does not fit raises a one-line :class:`GeofloodsamError` naming what was
            found.
        composite: ``swir`` / ``true`` for ``s2``, ``true`` / ``nir`` for ``naip``; default
            per sensor.
    """
    sensor, sar_units, s2_offset = parse_sensor_spec(sensor)
    check_dtypes(getattr(ds, "name", "the raster"), ds.dtypes)  # before any value is read
    probe = Probe.of(ds, sar_units, s2_offset, composite)
    if sensor != "auto":
        kind = SENSORS[sensor]
        info = kind.detect(ds, probe, forced=True)
        if info is None:
            raise GeofloodsamError(
                f"--sensor {sensor} needs {kind.needs}; {probe.name} has {probe.found}."
            )
        return info
    for kind in SENSORS:
        info = kind.detect(ds, probe, forced=False)
        if info is not None:
            return info
    raise GeofloodsamError(f"no sensor recognises {probe.name} ({probe.found}).")


def plain_info(ds, reason: str) -> SensorInfo:
    """An ``rgb`` :class:`SensorInfo` for a raster read through ``--bands`` as usual."""
    return SensorInfo(sensor=Rgb.name, reason=reason, composite_bands=(1, 1, 1),
                      composite_ranges=((0.0, 255.0),) * 3, physical=False)


def _s2_offset(ds, given: str) -> tuple[float, str]:
    """The L2A BOA_ADD_OFFSET in DN: given (``--s2-offset``), from the metadata, or 0."""
    if given not in ("auto", None):
        try:
            return float(given), f"offset {float(given):g} DN (--s2-offset)"
        except ValueError:
            raise GeofloodsamError(
                f"--s2-offset {given}: give a number of DN (e.g. -1000) or auto."
            ) from None
    tags = dict(ds.tags())
    for b in range(1, ds.count + 1):
        tags.update(ds.tags(b))
    for key, value in tags.items():
        if "BOA_ADD_OFFSET" in key.upper():
            try:
                return float(value), f"offset {float(value):g} DN (metadata {key})"
            except ValueError:
                continue
    return 0.0, "no BOA_ADD_OFFSET in the metadata: no offset"


def _radar_info(ds, kind: type[RadarSensor], pols: list, probe: Probe) -> SensorInfo:
    """``s1`` / ``sar`` info for 1-2 bands with their polarisations (None: unknown)."""
    described, name, found = probe.described, probe.name, probe.found
    roles: dict[str, int] = {}
    for band, pol in enumerate(pols, start=1):
        role = kind.roles.get(pol or "", "co" if len(pols) == 1 or band == 1 else "cross")
        roles.setdefault(role, band)
    if len(pols) == 2 and len(roles) != 2:  # two bands, roles not distinct: band 1 co
        roles = {"co": 1, "cross": 2}
    if described:
        order = f"polarisations {', '.join(pols)} from the descriptions"
    else:
        order = "no polarisation in the descriptions: " + (
            f"band 1 taken as {pols[0]}, band 2 as {pols[1]}" if len(pols) == 2
            else "one band taken as co-polarised")
    bands = tuple(roles[r] for r in ("co", "cross") if r in roles)
    units, how = radar_units(ds, list(bands), probe.sar_units, name, found)
    relative = units == "amplitude" and not calibrated_amplitude(ds, bands)
    if len(bands) == 2:
        ranges, physical_ = kind.composite_ranges, True
    elif relative:
        db = to_db_from(units, sample_bands(ds, bands))
        ranges, physical_ = _percentile_ranges(np.repeat(db, 3, axis=0)), False
    else:
        ranges, physical_ = (kind.grey_ranges[next(iter(roles))],) * 3, True
    what = {"db": "dB", "power": "linear power", "amplitude": "amplitude"}[units]
    if units == "amplitude":
        what += (" (relative: uncalibrated DN, the scene's own split)" if relative
                 else " (calibrated)")
    return SensorInfo(
        sensor=kind.name,
        reason=f"{kind.title}: {found}; {order}; units {what} from {how}",
        composite_bands=bands,
        composite_ranges=ranges,
        index_bands=dict(roles),
        radar_scale=units,
        composite="co-cross-ratio" if len(bands) == 2 else f"{next(iter(roles))}-grey",
        physical=physical_,
        relative=relative,
        units_how=how,
    )


def _plain_rgb_info(ds, kind: type[Sensor], bands: tuple[int, ...], composite: str,
                    index: dict[str, int], what: str, found: str) -> SensorInfo:
    """``naip`` / ``rgb`` info: uint8 as is, other types the 2-98 percentiles of a sample."""
    if all(d == "uint8" for d in ds.dtypes):
        ranges, physical_, how = ((0.0, 255.0),) * 3, True, "uint8 used as is"
    else:
        ranges = _percentile_ranges(sample_bands(ds, bands))
        physical_, how = False, "not uint8: 2-98 percentile stretch of the scene sample"
    return SensorInfo(
        sensor=kind.name,
        reason=f"{kind.title}: {found}; {what}; {how}",
        composite_bands=bands,
        composite_ranges=ranges,
        index_bands=index,
        composite=composite,
        physical=physical_,
    )


# ---------------------------------------------------------------------------- the sensors
@SENSORS.register
class Sentinel2(Sensor):
    """Sentinel-2 L1C / L2A reflectance: MNDWI prior, SWIR false-colour composite."""

    name = "s2"
    title = "Sentinel-2"
    help = "s2 (Sentinel-2, 12-13 bands)"
    needs = ("12-13 Sentinel-2 bands (B1..B12, B8A) or band descriptions naming "
             + ", ".join(S2_REQUIRED))
    fixed_composite = True
    #: composite -> (band names, fixed reflectance range per channel)
    composites: ClassVar[dict] = {
        "swir": (("B11", "B8", "B4"), ((0.0, 0.4), (0.0, 0.4), (0.0, 0.4))),
        "true": (("B4", "B3", "B2"), ((0.0, 0.3), (0.0, 0.3), (0.0, 0.3))),
    }
    default_composite = "swir"
    #: MNDWI (Xu 2006), chosen from the literature (one labelled S2 chip here cannot
    #: decide; docs/satellite.md)
    water_index = "mndwi"
    auto_method = "index"
    chip_folder = "S2Hand"

    @classmethod
    def detect(cls, ds, probe: Probe, forced: bool) -> SensorInfo | None:
        """By band descriptions naming the S2 bands, or 13 (L1C) / 12 (L2A) bands."""
        layout = _s2_layout(ds)
        if layout is None:
            return None
        bands, how = layout
        composite = cls.composite_named(probe.composite)
        names, ranges = cls.composites[composite]
        integer = not all(np.issubdtype(np.dtype(d), np.floating) for d in ds.dtypes)
        if integer:
            scale, unit = 1e-4, "integer DN = reflectance x 10000"
        else:
            sample = sample_bands(ds, [bands["B3"]])
            med = float(np.nanmedian(sample)) if np.isfinite(sample).any() else 0.0
            scale, unit = (1.0, "float reflectance") if med < 1.5 else (1e-4, "float DN x 10000")
        offset, offset_how = _s2_offset(ds, probe.s2_offset)
        if offset and scale == 1.0:
            offset, offset_how = 0.0, f"{offset_how}, not applied: float reflectance"
        return SensorInfo(
            sensor=cls.name,
            reason=f"{cls.title}: {probe.found}; {how}; {unit}; {offset_how}; composite "
                   f"{composite}",
            composite_bands=tuple(bands[n] for n in names),
            composite_ranges=ranges,
            index_bands={"green": bands["B3"], "red": bands["B4"], "nir": bands["B8"],
                         "swir1": bands["B11"]},
            scale=scale,
            composite=composite,
            offset=offset,
        )


class RadarSensor(Sensor):
    """Radar backscatter, in dB: the bimodal-split prior, co / cross composite.

    Attributes (on top of :class:`Sensor`'s):
        polarisations: the band descriptions' polarisations that identify it (auto).
        roles: polarisation -> band role of the water index (``co``, ``cross``).
        composite_ranges: dB ranges of the two-band composite (co, cross, co - cross).
        grey_ranges: role -> dB range of a one-band (grey) composite.
    """

    fixed_composite = True
    radar = True
    polarisations: ClassVar[frozenset[str]] = frozenset(POLARISATION_ROLES)
    roles: ClassVar[dict[str, str]] = POLARISATION_ROLES
    composite_ranges: ClassVar[tuple[tuple[float, float], ...]] = S1_RANGES
    grey_ranges: ClassVar[dict[str, tuple[float, float]]] = RADAR_GREY
    water_index = "radar-split"
    #: cross-validated on the Sentinel-1 chips (docs/satellite.md); ``sar`` follows ``s1``
    auto_method = "index"
    #: the adapted ``satellite`` model's encoder adapters were trained on optical RGB scenes,
    #: not on radar composites; on the S1 chips it maps no better (prompted 0.512 against
    #: 0.519, docs/finetuning.md), so radar keeps the decoder-only model
    auto_decoder = "satellite-decoder-only"


@SENSORS.register
class Sentinel1(RadarSensor):
    """Sentinel-1 GRD: VV and VH (or one of them)."""

    name = "s1"
    title = "Sentinel-1"
    help = "s1 (Sentinel-1 VV,VH, or one band described VV or VH)"
    needs = "2 float bands VV, VH (dB or linear power) or one band described VV or VH"
    polarisations = frozenset({"VV", "VH"})
    chip_folder = "S1Hand"

    @classmethod
    def detect(cls, ds, probe: Probe, forced: bool) -> SensorInfo | None:
        """Bands described VV / VH; undescribed: 2 float bands (band 1 VV). Forced: any
        described polarisations (S1 has HH/HV modes too)."""
        pols, described = probe.polarisations, probe.described
        if forced:
            fits = described or (ds.count == 2 and probe.float_data)
        elif described:
            fits = set(pols) <= cls.polarisations
        else:
            fits = ds.count == 2 and probe.float_data
        if not fits:
            return None
        return _radar_info(ds, cls, pols if described else ["VV", "VH"], probe)


@SENSORS.register
class Sar(RadarSensor):
    """Single- or dual-polarisation SAR of any mission (HH / HV too)."""

    name = "sar"
    title = "SAR"
    help = "sar (single- or dual-pol SAR of any mission: 1 band, or HH,HV)"
    needs = "1 band (any polarisation) or 2 bands co/cross (HH/HV, VV/VH)"

    @classmethod
    def detect(cls, ds, probe: Probe, forced: bool) -> SensorInfo | None:
        """1-2 bands described by polarisation; forced: any 1 band, or 2 (HH, HV)."""
        if not (probe.described or forced) or ds.count not in (1, 2):
            return None
        pols = probe.polarisations
        if not probe.described:
            pols = ["HH", "HV"] if ds.count == 2 else [None]
        return _radar_info(ds, cls, pols, probe)


@SENSORS.register
class Naip(Sensor):
    """NAIP aerial imagery: 4 bands R, G, B, NIR; NDWI prior."""

    name = "naip"
    title = "NAIP"
    help = "naip (R,G,B,NIR)"
    needs = "4 bands R, G, B, NIR"
    #: composite -> 1-based bands
    composites: ClassVar[dict] = {"true": (1, 2, 3), "nir": (4, 1, 2)}
    water_index = "ndwi"
    auto_method = "index"  # follows s2: no labelled NAIP data here

    @classmethod
    def detect(cls, ds, probe: Probe, forced: bool) -> SensorInfo | None:
        """Any 4-band raster (not Sentinel-2)."""
        if ds.count != 4:
            return None
        composite = cls.composite_named(probe.composite)
        return _plain_rgb_info(ds, cls, cls.composites[composite], composite,
                               {"green": 2, "red": 1, "nir": 4},
                               "4 bands taken as R, G, B, NIR (NAIP order)", probe.found)


@SENSORS.register
class Rgb(Sensor):
    """Anything else: bands 1-3 as R, G, B (one band as grey); no water index."""

    name = "rgb"
    title = "RGB"
    help = "rgb"
    needs = "1 or 3 bands"
    composites: ClassVar[dict] = {"true": None}
    #: prompted runs use the promptless decoder: a click keeps the promptless water body it
    #: falls in (docs/prompting.md: chosen on the ESW train scenes and the generated scenes)
    prompted_decoder = "satellite"
    catch_all = True

    @classmethod
    def detect(cls, ds, probe: Probe, forced: bool) -> SensorInfo:
        """Every raster: 2 non-float bands read through ``--bands``, else bands 1-3."""
        if ds.count == 2:  # not Sentinel-1: bands as chosen by --bands (the scene says so)
            return plain_info(ds, f"RGB: {probe.found}; 2 bands, not float: not Sentinel-1; "
                              "--bands chooses what SAM sees")
        bands = (1, 1, 1) if ds.count == 1 else (1, 2, 3)
        what = "1 band repeated as grey" if ds.count == 1 else "bands 1, 2, 3 as R, G, B"
        return _plain_rgb_info(ds, cls, bands, "true", {}, what, probe.found)


# ---------------------------------------------------------------------------- composites
def physical(raw: np.ndarray, info: SensorInfo) -> np.ndarray:
    """Raw band values -> physical units (reflectance, or dB for radar), float64."""
    x = np.asarray(raw, dtype=np.float64)
    if info.is_radar:
        return to_db_from(info.radar_scale, x)
    return (x + info.offset) * info.scale


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
    if info.is_radar:
        x = np.stack([x[0], x[1], x[0] - x[1]]) if x.shape[0] == 2 else np.repeat(x, 3, axis=0)
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
        unit = "dB" if info.is_radar else "reflectance"
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
