"""Windowed GeoTIFF reading: band selection, nodata / internal masks, one scene-level stretch.

The scene is never read whole. :func:`compute_stretch` looks at a small sample (an overview
level when the file has overviews, otherwise a deterministic grid of windows) and returns one
:class:`Stretch` that every tile is then mapped through, so that tiles share one contrast::

    with Scene.open("scene.tif", bands="4,3,2") as scene:
        stretch = compute_stretch(scene)            # 2nd-98th percentile per band
        rgb, valid = scene.read_rgb(Window(0, 0, 1024, 1024), stretch)

Band selection: 3 or more bands default to 1,2,3; a single band is repeated to RGB; two bands
must be chosen explicitly. uint8 scenes are used as they are (0-255) unless a stretch is given.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.windows import Window

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.sensors import SensorInfo, SensorStretch, detect_sensor, plain_info
from geofloodsam.raster.values import (
    FILL_MAGNITUDE,
    check_dtypes,
    fill_pixels,
)

PERCENTILES = (2.0, 98.0)
#: side of each sampled window when the scene has no overviews
SAMPLE_WINDOW = 512
#: an overview (or decimated read) used for the stretch has at least this many pixels a side
SAMPLE_MIN_SIDE = 512
#: scenes whose undeclared fill value was reported (one warning per scene and process)
_FILL_REPORTED: set[str] = set()


# --------------------------------------------------------------------------- CLI parsing
def parse_bands(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"4,3,2"`` -> ``(4, 3, 2)``; ``None`` / ``""`` -> ``None`` (the default selection).

    One band (repeated to RGB) or three bands, 1-based.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        try:
            bands = tuple(int(p) for p in parts)
        except ValueError:
            raise GeofloodsamError(
                f"--bands must be 1 or 3 comma-separated band numbers such as 4,3,2, got {text!r}."
            ) from None
    else:
        bands = tuple(int(b) for b in text)
    if len(bands) not in (1, 3):
        raise GeofloodsamError(
            f"--bands takes 1 band (repeated to RGB) or 3 bands (R,G,B), got {len(bands)}: "
            f"{','.join(map(str, bands))}."
        )
    if min(bands) < 1:
        raise GeofloodsamError(
            f"--bands numbers start at 1, got {','.join(map(str, bands))}."
        )
    return bands


def parse_stretch(text: str | tuple[float, float] | None) -> str | tuple[float, float]:
    """The one parser of ``--stretch``, for every command and library call.

    ``"auto"`` (or ``None``) -> ``"auto"``; ``"none"`` -> ``"none"`` (values used as 0-255);
    ``"MIN,MAX"`` or a pair -> ``(MIN, MAX)`` with MIN < MAX.
    """
    if text is None:
        return "auto"
    if isinstance(text, str):
        if text.strip().lower() in ("auto", "none"):
            return text.strip().lower()
        parts = text.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise GeofloodsamError(
                f"--stretch must be 'auto', 'none' or MIN,MAX (e.g. 0,3000), got {text!r}."
            ) from None
    else:
        try:
            low, high = (float(v) for v in text)
        except (TypeError, ValueError):
            raise GeofloodsamError(
                f"stretch must be 'auto', 'none' or a (MIN, MAX) pair, got {text!r}."
            ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise GeofloodsamError(
            f"--stretch MIN,MAX needs finite MIN < MAX, got {low:g},{high:g}."
        )
    return low, high


# --------------------------------------------------------------------------- stretch
@dataclass
class Stretch:
    """One linear stretch to 0-255 per selected band, shared by every tile of a scene."""

    lows: np.ndarray  # (B,) raw value mapped to 0
    highs: np.ndarray  # (B,) raw value mapped to 255
    method: str

    def __post_init__(self) -> None:
        self.lows = np.asarray(self.lows, dtype=np.float64).reshape(-1)
        self.highs = np.asarray(self.highs, dtype=np.float64).reshape(-1)

    @property
    def is_identity(self) -> bool:
        """True when the stretch maps 0-255 onto itself (uint8 data used as is)."""
        return bool(np.all(self.lows == 0) and np.all(self.highs == 255))

    def to_dict(self) -> dict:
        """JSON-ready record (for run.json)."""
        return {
            "method": self.method,
            "lows": [float(v) for v in self.lows],
            "highs": [float(v) for v in self.highs],
        }

    @classmethod
    def from_dict(cls, record: dict) -> Stretch | SensorStretch:
        """Inverse of :meth:`to_dict` (and of :meth:`SensorStretch.to_dict`)."""
        if "sensor" in record:
            return SensorStretch.from_dict(record)
        return cls(np.asarray(record["lows"]), np.asarray(record["highs"]), record["method"])

    def apply(self, data: np.ndarray) -> np.ndarray:
        """(B, h, w) raw values -> (h, w, 3) uint8 RGB; one band is repeated to three.

        Values outside [low, high] are clipped; NaN becomes 0. A constant band (low == high)
        uses a span of 1 instead of dividing by zero.
        """
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        if data.shape[0] != self.lows.size:
            raise ValueError(f"stretch has {self.lows.size} bands, data has {data.shape[0]}")
        if data.dtype == np.uint8 and self.is_identity:
            out = data
        else:
            x = data.astype(np.float32)
            lows = self.lows.astype(np.float32)[:, None, None]
            span = np.where(self.highs > self.lows, self.highs - self.lows, 1.0)
            with np.errstate(over="ignore", invalid="ignore"):  # +-inf are clipped below
                x -= lows
                x *= (255.0 / span).astype(np.float32)[:, None, None]
            np.nan_to_num(x, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
            np.clip(x, 0.0, 255.0, out=x)
            x += 0.5
            out = x.astype(np.uint8)
        out = np.moveaxis(out, 0, -1)
        if out.shape[-1] == 1:
            out = np.repeat(out, 3, axis=-1)
        return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- scene
class Scene:
    """An open raster with its band selection; a context manager.

    Attributes: ``path``, ``ds`` (the rasterio dataset), ``bands`` (1-based: 1 or 3 of them,
    or a sensor composite's bands), ``crs``, ``transform``, ``width``, ``height``, ``dtype``,
    ``nodata``, ``sensor`` (a :class:`~geofloodsam.raster.sensors.SensorInfo`, when opened
    with ``sensor``) and ``composite`` (whether tiles are read as the sensor's composite).
    """

    def __init__(
        self, path: Path, ds, bands: tuple[int, ...], sensor: SensorInfo | None = None,
        composite: bool = False,
    ) -> None:
        self.path = path
        self.ds = ds
        self.bands = bands
        self.sensor = sensor
        self.composite = composite
        self.crs = ds.crs
        self.transform = ds.transform
        self.width = int(ds.width)
        self.height = int(ds.height)
        self.dtype = np.dtype(ds.dtypes[bands[0] - 1])
        self.nodata = ds.nodata
        #: NaN, +-inf and undeclared fill values (:mod:`~geofloodsam.raster.values`) are not
        #: covered by the dataset masks: float data are checked value by value
        self._check_nan = bool(np.issubdtype(self.dtype, np.floating))
        flags = ds.mask_flag_enums
        #: no nodata value, internal mask or NaN check: every pixel is valid, nothing to read
        self.all_valid = not self._check_nan and all(
            flags[b - 1] == [MaskFlags.all_valid] for b in bands
        )

    @classmethod
    def open(
        cls, path: str | Path, bands: str | Sequence[int] | None = None,
        sensor: str | SensorInfo | None = None,
    ) -> Scene:
        """Open ``path`` and check it: readable raster, CRS, supported dtype, bands exist.

        ``sensor``: ``auto`` or a sensor name (detected or checked by
        :func:`~geofloodsam.raster.sensors.detect_sensor`, one-line errors), or a
        :class:`SensorInfo` found before. Without ``bands``, an ``s1``/``s2`` scene is read
        as its composite (:meth:`stretch`); with ``bands``, those bands as usual.
        """
        path = Path(path)
        if not path.exists():
            raise GeofloodsamError(f"raster {path} not found: check the path.")
        if path.is_dir():
            raise GeofloodsamError(f"raster {path} is a folder: give a GeoTIFF file.")
        selection = parse_bands(bands)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                ds = rasterio.open(path)
        except RasterioIOError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "unknown format"
            raise GeofloodsamError(
                f"cannot read {path} as a raster ({reason}): give a GeoTIFF or other GDAL raster."
            ) from None
        try:
            info = sensor
            if selection is None:  # before sensor detection reads any value
                check_dtypes(path, ds.dtypes)
            if isinstance(sensor, str) and ds.count:
                try:
                    info = _detect(path, ds, sensor)
                except GeofloodsamError as exc:
                    if sensor != "auto" or selection is None:
                        raise
                    # --bands given: read them as asked, say why no sensor was recognised
                    info = plain_info(ds, f"RGB: no sensor recognised ({exc}); --bands used")
            elif isinstance(sensor, str):
                info = None
            composite = info is not None and info.uses_composite and selection is None
            if composite:
                selection = info.composite_bands
            return cls(path, ds, _check_dataset(path, ds, selection), info, composite)
        except BaseException:
            ds.close()
            raise

    # context manager
    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the dataset."""
        self.ds.close()

    def __repr__(self) -> str:
        return (
            f"Scene({str(self.path)!r}, {self.width}x{self.height}, bands={self.bands}, "
            f"dtype={self.dtype}, crs={self.crs})"
        )

    # reading
    @contextlib.contextmanager
    def reading(self, what: str = "") -> Iterator[None]:
        """Turn a GDAL read error (a truncated or damaged file) into a one-line error."""
        try:
            yield
        except (RasterioError, CPLE_BaseError) as exc:
            cause = exc.__cause__ or exc.__context__ or exc
            reason = " ".join(str(cause).split())[:200] or type(exc).__name__
            raise GeofloodsamError(
                f"cannot read {self.path}{what} ({reason}): the file is truncated or damaged; "
                "copy or download it again, or rewrite it with gdal_translate."
            ) from None

    def read_valid(self, window: Window) -> np.ndarray:
        """(h, w) bool: True where every selected band is valid (dataset masks, NaN)."""
        with self.reading(_where(window)):
            data = self.ds.read(self.bands, window=window) if self._check_nan else None
            return self.validity(data, window=window)

    def validity(
        self, data: np.ndarray | None, window: Window | None = None,
        out_shape: tuple[int, int, int] | None = None,
    ) -> np.ndarray:
        """(h, w) bool validity of one read of the selected bands: ``window``, or the whole
        raster decimated to ``out_shape`` (B, h, w). Valid: every band's dataset mask (nodata
        value, internal mask) says so and, where checked, ``data`` (that read) is measured
        (finite, no undeclared fill value)."""
        if self.all_valid:
            shape = out_shape[1:] if out_shape else (int(window.height), int(window.width))
            return np.ones(shape, bool)
        masks = self.ds.read_masks(self.bands, window=window, out_shape=out_shape)
        valid = (masks != 0).all(axis=0)
        if self._check_nan:
            valid &= _measured(data)
        return valid

    def read_rgb(self, window: Window, stretch: Stretch) -> tuple[np.ndarray, np.ndarray]:
        """(h, w, 3) uint8 RGB through ``stretch`` and the (h, w) bool valid mask.

        Invalid pixels (nodata, internal mask, NaN in any selected band) are black in the RGB.
        """
        with self.reading(_where(window)):
            data = self.ds.read(self.bands, window=window)
            valid = self.validity(data, window=window)
        if self._check_nan and not valid.all():
            data[:, ~valid] = np.nan  # fill values never reach the stretch (no overflow)
        rgb = stretch.apply(data)
        if not self.all_valid:
            rgb[~valid] = 0
        return rgb, valid


def _spec_text(spec) -> str:
    return spec if isinstance(spec, str) else f"{spec[0]:g},{spec[1]:g}"


def _detect(path: Path, ds, sensor: str) -> SensorInfo:
    """:func:`detect_sensor`, with read errors of a damaged file as one line."""
    try:
        return detect_sensor(ds, sensor)
    except (RasterioError, CPLE_BaseError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise GeofloodsamError(
            f"cannot read {path} ({reason}): the file is truncated or damaged; copy or "
            "download it again, or rewrite it with gdal_translate."
        ) from None


def _is_invertible(transform) -> bool:
    """Whether the geotransform maps pixels to the map one to one (non-zero determinant)."""
    det = transform.a * transform.e - transform.b * transform.d
    return math.isfinite(det) and det != 0


def _where(window: Window) -> str:
    """`` at window x0,y0 WxH`` for messages."""
    return (
        f" at pixels {int(window.col_off)},{int(window.row_off)} "
        f"({int(window.width)}x{int(window.height)})"
    )


def _check_dataset(path: Path, ds, bands: tuple[int, ...] | None) -> tuple[int, ...]:
    """Validate an open dataset; return the band selection."""
    if ds.count == 0 and ds.subdatasets:
        names = ", ".join(ds.subdatasets[:3]) + (", ..." if len(ds.subdatasets) > 3 else "")
        raise GeofloodsamError(
            f"{path} holds {len(ds.subdatasets)} variables (subdatasets), not one raster: "
            f"give one of them as the scene, e.g. {names}."
        )
    if ds.count == 0:
        raise GeofloodsamError(f"raster {path} has no bands: give a raster with data.")
    no_transform = ds.transform.is_identity or not _is_invertible(ds.transform)
    if no_transform and ds.gcps[0]:
        raise GeofloodsamError(
            f"raster {path} is georeferenced by ground control points only, not by a "
            "geotransform: warp it first (gdalwarp -r bilinear IN OUT)."
        )
    if ds.crs is None:
        raise GeofloodsamError(
            f"raster {path} has no CRS: georeference it first "
            "(e.g. gdal_edit.py -a_srs EPSG:XXXX, or gdalwarp)."
        )
    if no_transform:
        raise GeofloodsamError(
            f"raster {path} has a CRS but no geotransform (pixel size and origin): its "
            "pixels cannot be placed on the map; set one with gdal_translate -a_ullr or "
            "gdal_edit.py -a_ullr, or warp it with gdalwarp."
        )
    if bands is None:
        if ds.count == 2:
            raise GeofloodsamError(
                f"raster {path} has 2 bands: choose with --bands (e.g. --bands 1 to use band 1 "
                "as grey, or --bands 1,2,2)."
            )
        bands = (1,) if ds.count == 1 else (1, 2, 3)
    missing = [b for b in bands if b > ds.count]
    if missing:
        have = "band 1" if ds.count == 1 else f"bands 1-{ds.count}"
        raise GeofloodsamError(
            f"band {missing[0]} does not exist in {path} (it has {have}): fix --bands."
        )
    dtypes = {ds.dtypes[b - 1] for b in bands}
    check_dtypes(path, dtypes)
    if len(dtypes) > 1:
        raise GeofloodsamError(
            f"bands {','.join(map(str, bands))} of {path} have different data types "
            f"({', '.join(sorted(dtypes))}): choose bands of one type."
        )
    return bands


# --------------------------------------------------------------------------- sampling
def sample_windows(width: int, height: int, n: int = 16, size: int = SAMPLE_WINDOW) -> list[Window]:
    """A deterministic grid of about ``n`` windows of ``size`` px spread over the raster."""
    k = max(1, math.ceil(math.sqrt(n)))
    w, h = min(size, width), min(size, height)
    cols = np.unique(np.linspace(0, width - w, k).round().astype(int))
    rows = np.unique(np.linspace(0, height - h, k).round().astype(int))
    return [Window(int(c), int(r), w, h) for r in rows for c in cols]


def _overview_factor(scene: Scene) -> int | None:
    """The coarsest overview decimation still at least SAMPLE_MIN_SIDE px a side, if any."""
    factors = scene.ds.overviews(scene.bands[0])
    side = min(max(scene.width, scene.height), SAMPLE_MIN_SIDE)
    usable = [f for f in factors if max(scene.width, scene.height) / f >= side]
    return max(usable) if usable else None


def _decimated(scene: Scene, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, N) raw values and (N,) validity of a decimated read (served from overviews)."""
    shape = (len(scene.bands), math.ceil(scene.height / factor), math.ceil(scene.width / factor))
    data = scene.ds.read(scene.bands, out_shape=shape)
    valid = scene.validity(data, out_shape=shape)
    return data.reshape(shape[0], -1), valid.reshape(-1)


def _windowed(scene: Scene, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, N) raw values and (N,) validity of a grid of sampled windows."""
    datas, valids = [], []
    for window in sample_windows(scene.width, scene.height, n):
        data = scene.ds.read(scene.bands, window=window)
        valid = scene.validity(data, window=window)
        datas.append(data.reshape(data.shape[0], -1))
        valids.append(valid.reshape(-1))
    return np.concatenate(datas, axis=1), np.concatenate(valids)


def _sample(scene: Scene, sample_windows_n: int) -> tuple[np.ndarray, str]:
    """Valid raw values (B, N) of a small sample of the scene and where they came from."""
    factor = _overview_factor(scene)
    if factor is not None:
        level = scene.ds.overviews(scene.bands[0]).index(factor) + 1
        data, valid = _decimated(scene, factor)
        source = f"overview level {level} (1/{factor})"
    else:
        data, valid = _windowed(scene, sample_windows_n)
        n = len(sample_windows(scene.width, scene.height, sample_windows_n))
        source = f"{n} sampled window{'s' if n > 1 else ''}"
    if not valid.any():
        # A mostly-nodata scene can hide its data from the windows: look once at a
        # decimated read (bounded memory) before calling the scene empty.
        factor = max(1, math.ceil(max(scene.width, scene.height) / (2 * SAMPLE_MIN_SIDE)))
        data, valid = _decimated(scene, factor)
        source = f"a 1/{factor} decimated read"
    _report_fill(scene, data)
    if not valid.any():
        raise GeofloodsamError(
            f"raster {scene.path} holds only nodata in bands {','.join(map(str, scene.bands))} "
            "(nodata value, internal mask or NaN everywhere sampled): check the file and --bands."
        )
    return data[:, valid], source


def _measured(data: np.ndarray) -> np.ndarray:
    """(h, w) bool of (B, h, w) float values: finite and not an undeclared fill in any band."""
    return (np.isfinite(data) & ~fill_pixels(data)).all(axis=0)


def _report_fill(scene: Scene, data: np.ndarray) -> None:
    """One warning line per scene whose sample holds an undeclared fill value."""
    fill = fill_pixels(data)
    key = str(scene.path)
    if not fill.any() or key in _FILL_REPORTED:
        return
    _FILL_REPORTED.add(key)
    values = np.unique(data[fill])
    shown = ", ".join(repr(float(v)) for v in values[:3])  # exact: gdal_edit gets the value
    click.echo(
        f"Warning: {scene.path} declares no nodata value for {shown} (a fill value: no sensor "
        f"measures anything beyond +-{FILL_MAGNITUDE:g}): those pixels are read as nodata; "
        f"declare it with gdal_edit.py -a_nodata {float(values[0])!r} to say so in the file.",
        err=True,
    )


def compute_stretch(
    scene: Scene, spec: str | tuple[float, float] = "auto", sample_windows: int = 16
) -> Stretch | SensorStretch:
    """The scene-level stretch: ``"auto"``, ``"none"`` or ``(MIN, MAX)`` (also ``"MIN,MAX"``).

    ``auto``: per band 2nd-98th percentiles of the valid pixels of an overview level (when the
    file has overviews) or of ``sample_windows`` windows spread over the scene; uint8 scenes
    are not stretched (0-255). Raises :class:`GeofloodsamError` if the sample holds only
    nodata, or if every selected band is constant.
    """
    spec = parse_stretch(spec)
    if scene.composite and spec != "auto":
        raise GeofloodsamError(
            f"--stretch {_spec_text(spec)} needs --bands: {scene.path} is read as its "
            f"{scene.sensor.sensor} composite, whose range is fixed in physical units; give "
            "--bands too, or leave --stretch out."
        )
    if scene.composite:  # the sensor's fixed physical range
        with scene.reading(" (sampling it)"):
            _sample(scene, sample_windows)  # the check for an all-nodata scene
        return SensorStretch(scene.sensor)
    n_bands = len(scene.bands)
    if spec != "auto" or scene.dtype == np.uint8:
        if not scene.all_valid:  # no values needed: only the check for an all-nodata scene
            with scene.reading(" (sampling it)"):
                _sample(scene, sample_windows)
        if spec == "none":
            return Stretch(np.zeros(n_bands), np.full(n_bands, 255.0), "none")
        if spec != "auto":
            low, high = spec
            return Stretch(
                np.full(n_bands, low), np.full(n_bands, high), f"fixed {low:g},{high:g}"
            )
        return Stretch(np.zeros(n_bands), np.full(n_bands, 255.0), "none (uint8)")
    with scene.reading(" (sampling it for the stretch)"):
        values, source = _sample(scene, sample_windows)
    values = values.astype(np.float64)
    lows, highs = np.percentile(values, PERCENTILES, axis=1)
    flat = highs <= lows
    if flat.any():  # a band with little spread: fall back to its full range
        lows[flat] = values[flat].min(axis=1)
        highs[flat] = values[flat].max(axis=1)
    constant = highs <= lows
    if constant.all():
        raise GeofloodsamError(
            f"every selected band of {scene.path} is constant ({lows[0]:g}) where sampled: "
            "nothing to segment; check --bands or give --stretch MIN,MAX."
        )
    method = f"percentile-{PERCENTILES[0]:g}-{PERCENTILES[1]:g} from {source}"
    if flat.any():
        bands = ",".join(str(b) for b, f in zip(scene.bands, flat, strict=True) if f)
        method += f"; min-max for band(s) {bands}"
    return Stretch(lows, highs, method)
