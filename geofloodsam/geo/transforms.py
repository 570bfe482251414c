"""Every coordinate transform in one place.

Two families live here:

* pixel <-> model: SAM works on images resized so that their longest side is
  ``image_size`` (1024) and padded bottom/right to a square. Prompts given in the
  original image's pixel coordinates (x = column, y = row, pixel centres at +0.5) are
  scaled into that frame, and model outputs are scaled back.
* world <-> pixel: map coordinates in a raster's CRS to fractional pixel coordinates of
  that raster (or of a window of it) through its affine transform, and geometries from
  one CRS into another (whole geometries, densified, never by two corners).
"""

from __future__ import annotations

import numpy as np
from affine import Affine

from geofloodsam.geo.boxes import Box

Size = tuple[int, int]  # (height, width)


# --------------------------------------------------------------------------- pixel <-> model
def resized_size(original: Size, image_size: int = 1024) -> Size:
    """(h, w) of an image of size ``original`` after resizing its longest side to ``image_size``."""
    h, w = original
    scale = image_size / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def pixel_to_model(coords: np.ndarray, original: Size, image_size: int = 1024) -> np.ndarray:
    """Scale (..., 2) x/y pixel coordinates of the original image into the model frame."""
    new_h, new_w = resized_size(original, image_size)
    out = np.array(coords, dtype=np.float64, copy=True)
    out[..., 0] *= new_w / original[1]
    out[..., 1] *= new_h / original[0]
    return out


def model_to_pixel(coords: np.ndarray, original: Size, image_size: int = 1024) -> np.ndarray:
    """Inverse of :func:`pixel_to_model`."""
    new_h, new_w = resized_size(original, image_size)
    out = np.array(coords, dtype=np.float64, copy=True)
    out[..., 0] *= original[1] / new_w
    out[..., 1] *= original[0] / new_h
    return out


def boxes_pixel_to_model(boxes: np.ndarray, original: Size, image_size: int = 1024) -> np.ndarray:
    """Scale (N, 4) pixel boxes (rows of :class:`~geofloodsam.geo.boxes.Box` fields, ``x0, y0,
    x1, y1``) into the model frame."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2)
    return pixel_to_model(boxes, original, image_size).reshape(-1, 4)


# --------------------------------------------------------------------------- world <-> pixel
def world_to_pixel(
    transform: Affine, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates -> fractional (col, row) pixel coordinates (pixel centres at +0.5)."""
    inv = ~transform
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    cols = inv.a * xs + inv.b * ys + inv.c
    rows = inv.d * xs + inv.e * ys + inv.f
    return cols, rows


def pixel_to_world(
    transform: Affine, cols: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (col, row) pixel coordinates -> map coordinates."""
    cols = np.asarray(cols, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    xs = transform.a * cols + transform.b * rows + transform.c
    ys = transform.d * cols + transform.e * rows + transform.f
    return xs, ys


def window_transform(transform: Affine, col_off: int, row_off: int) -> Affine:
    """The affine transform of a window whose top-left pixel is (col_off, row_off)."""
    from rasterio.windows import Window
    from rasterio.windows import transform as win_transform

    return win_transform(Window(col_off, row_off, 1, 1), transform)


def reproject_geometries(geoms, src_crs, dst_crs, densify_points: int = 21):
    """Reproject a GeoSeries (or iterable of shapely geometries) to ``dst_crs``.

    Lines and polygon edges are densified first so that the bounds of a reprojected box
    are right even where the projection bends straight lines (never two corners only).
    """
    import geopandas as gpd
    import shapely

    series = gpd.GeoSeries(list(geoms), crs=src_crs)
    if series.crs is not None and series.crs.equals(dst_crs):
        return series
    b = series.bounds.to_numpy()
    extent = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    values = series.values.copy()
    lines = (extent > 0) & ~series.geom_type.isin(["Point", "MultiPoint"]).to_numpy()
    if lines.any():
        values[lines] = shapely.segmentize(values[lines], extent[lines] / (densify_points - 1))
    return gpd.GeoSeries(values, crs=src_crs).to_crs(dst_crs)


# --------------------------------------------------------------------------- inside the raster
def pixels_inside(cols: np.ndarray, rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """The one "inside the raster" rule for points: finite and in ``[0, width) x [0, height)``."""
    cols, rows = np.asarray(cols, np.float64), np.asarray(rows, np.float64)
    return (
        np.isfinite(cols) & np.isfinite(rows)
        & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    )


def clip_box(bounds, width: int, height: int) -> Box | None:
    """... and for boxes: ``bounds`` (``x0, y0, x1, y1`` pixels) clipped to the raster, or
    ``None`` when no area of it is inside."""
    bounds = np.asarray(bounds, np.float64)
    if not np.isfinite(bounds).all():
        return None
    x0, y0 = max(bounds[0], 0.0), max(bounds[1], 0.0)
    x1, y1 = min(bounds[2], float(width)), min(bounds[3], float(height))
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(float(x0), float(y0), float(x1), float(y1))
