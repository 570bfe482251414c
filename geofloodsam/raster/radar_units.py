"""Radar units: dB, linear power or amplitude, found from the band metadata or the values.

:func:`radar_units` decides (``--sar-units auto|db|power|amplitude``: forced, with a
:class:`SensorWarning` when the values disagree; else the band metadata, then the values);
:func:`to_db_from` converts to dB, what every radar composite and prior works in. Amplitude
DN without calibration (:func:`calibrated_amplitude` false) is relative: 20 log10 of it is dB
up to an unknown constant, so a scene's split is its own.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.values import sample_bands

#: ``--sar-units``
SAR_UNITS = ("auto", "db", "power", "amplitude")


class SensorWarning(UserWarning):
    """A sensor setting that was forced against what the raster looks like (one line)."""


def to_db(linear: np.ndarray) -> np.ndarray:
    """Linear backscatter power -> dB (non-positive values become NaN)."""
    x = np.asarray(linear, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, 10.0 * np.log10(np.where(x > 0, x, 1.0)), np.nan)


def to_db_from(units: str | None, x: np.ndarray) -> np.ndarray:
    """Radar values in ``units`` (``db``, ``power``/``linear``, ``amplitude``) -> dB."""
    x = np.asarray(x, dtype=np.float64)
    if units in ("power", "linear"):
        return to_db(x)
    if units == "amplitude":
        return 2.0 * to_db(x)
    return x


def units_from_values(values: np.ndarray, integer: bool) -> str | None:
    """``db``, ``power``, ``amplitude`` or None (none fits) from finite radar values."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    med = float(np.median(v))
    if v.min() >= 0:
        if integer or med >= 1.0:
            return "amplitude"
        if np.percentile(v, 99) < 20:
            return "power"
        return None
    if -40.0 <= med <= 10.0 and (v < 0).mean() > 0.5:
        return "db"
    return None


def units_from_metadata(ds, bands: Sequence[int]) -> str | None:
    """Radar units named by band descriptions, units or tags (``dB``, amplitude, power)."""
    texts = []
    for b in bands:
        texts.append(ds.descriptions[b - 1] or "")
        texts.append((ds.units or ("",) * ds.count)[b - 1] or "")
        texts.extend(f"{k}={v}" for k, v in ds.tags(b).items())
    text = " ".join(texts).lower()
    if re.search(r"(?<![a-z])db(?![a-z])|decibel", text):
        return "db"
    if "amplitude" in text or re.search(r"(?<![a-z])amp(?![a-z])", text):
        return "amplitude"
    if re.search(r"power|intensity|linear", text):
        return "power"
    return None


def value_range(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return "no valid value"
    return f"values {v.min():.3g}..{v.max():.3g}, median {np.median(v):.3g}"


def radar_units(ds, bands: Sequence[int], forced: str, name: str, found: str) -> tuple[str, str]:
    """(units, how) of the radar ``bands``: forced (warning if the values disagree),
    metadata, or values; one-line error when the values fit no unit."""
    integer = not all(np.issubdtype(np.dtype(ds.dtypes[b - 1]), np.floating) for b in bands)
    sample = sample_bands(ds, bands)
    by_values = units_from_values(sample, integer)
    if forced != "auto":
        if by_values is not None and by_values != forced and not (
            forced in ("power", "amplitude") and by_values in ("power", "amplitude")
        ):
            warnings.warn(
                f"--sar-units {forced} contradicts the values of {name}, which look like "
                f"{by_values} ({value_range(sample)}): {forced} used as asked.",
                SensorWarning, stacklevel=2,
            )
        return forced, "forced (--sar-units)"
    if not np.isfinite(sample).any():
        return "db", "no valid sample value (all nodata/NaN): dB assumed"
    meta = units_from_metadata(ds, bands)
    if meta is not None and (by_values is None or by_values == meta or
                             {meta, by_values} <= {"power", "amplitude"}):
        return meta, "band metadata"
    if by_values is None:
        raise GeofloodsamError(
            f"{name} ({found}) does not look like SAR backscatter in dB (mostly negative), "
            f"linear power (non-negative, median < 1) nor amplitude (non-negative DN): "
            f"{value_range(sample)}; give --sar-units, or convert it to dB."
        )
    return by_values, f"values ({value_range(sample)})"


def calibrated_amplitude(ds, bands: Sequence[int]) -> bool:
    """Float amplitude with a median under 1 reads as calibrated; integer DN never does."""
    if not all(np.issubdtype(np.dtype(ds.dtypes[b - 1]), np.floating) for b in bands):
        return False
    sample = sample_bands(ds, bands)
    return bool(np.isfinite(sample).any() and np.nanmedian(sample) < 1.0)
