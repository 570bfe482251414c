"""Blend per-tile water probabilities into one seamless raster, one row strip at a time.

Each object's probability in each tile it was decoded in is kept in an on-disk
:class:`TileStore` (cropped to where it is not ~0), never in a full-scene array. The output
is produced in row strips: in a strip, each object is blended over the tiles it was decoded
in, each weighted by :func:`tile_weights`, a separable ramp that tapers towards the tile's
*interior* edges (the ones shared with a neighbouring tile) and is flat at the raster
border; objects are then combined by per-pixel maximum. Weights never reach zero, so a pixel
seen by one tile only keeps that tile's probability exactly, and a tile decoded for other
objects never votes "dry" on an object it was not asked about (nor does a tile where a seed
carried into it mapped nothing: the engine stores no crop for it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.windows import Window

from geofloodsam.geo.boxes import Box
from geofloodsam.qgis.style import style_mask
from geofloodsam.raster.strips import row_strips, strip_rows
from geofloodsam.tiles.grid import Tile, TileGrid
from geofloodsam.tiles.store import TileStore

#: Smallest blend weight, so that every decoded pixel counts.
WEIGHT_FLOOR = 1e-3
#: GeoTIFF block side
BLOCK = 512


def ramp(length: int, before: int, after: int, floor: float = WEIGHT_FLOOR) -> np.ndarray:
    """1-D weights of ``length`` pixels tapering linearly over ``before``/``after`` pixels.

    ``before`` (``after``) is the overlap with the neighbour at the start (end); 0 means a
    raster border or no overlap, where the weight stays 1. Two linear ramps over the same
    overlap sum to 1 at every pixel.
    """
    w = np.ones(length, dtype=np.float32)
    idx = np.arange(length, dtype=np.float32)
    if before > 0:
        w = np.minimum(w, (idx + 0.5) / before)
    if after > 0:
        w = np.minimum(w, (length - idx - 0.5) / after)
    return np.maximum(w, floor).astype(np.float32)


def tile_ramps(
    grid: TileGrid, tile: Tile, floor: float = WEIGHT_FLOOR
) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) 1-D weight ramps of ``tile``: tapered only towards neighbours."""
    nb = grid.neighbours(tile)
    left = nb["left"].x1 - tile.x0 if "left" in nb else 0
    right = tile.x1 - nb["right"].x0 if "right" in nb else 0
    top = nb["top"].y1 - tile.y0 if "top" in nb else 0
    bottom = tile.y1 - nb["bottom"].y0 if "bottom" in nb else 0
    wy = ramp(tile.height, max(top, 0), max(bottom, 0), floor)
    wx = ramp(tile.width, max(left, 0), max(right, 0), floor)
    return wy, wx


def tile_weights(grid: TileGrid, tile: Tile, floor: float = WEIGHT_FLOOR) -> np.ndarray:
    """(h, w) blend weights of ``tile``: product of its ramps, never below ``floor``."""
    wy, wx = tile_ramps(grid, tile, floor)
    return np.maximum(wy[:, None] * wx[None, :], floor)


@dataclass
class Strip:
    """A blended row strip ``[y0, y1)`` spanning the raster's full width.

    ``prob`` and ``ids`` are 0 outside columns ``[x0, x1)`` (empty when ``x0 == x1``): the
    extent of every object blended in the strip, so consumers can skip the rest.
    """

    y0: int
    y1: int
    prob: np.ndarray  # (h, W) float32 water probability: max over objects (0 where none)
    ids: np.ndarray  # (h, W) int32 object with the highest probability (0: none)
    x0: int = 0
    x1: int = 0
    #: the strip-local box (rows from ``y0``) of each decoded tile that meets the strip
    tile_spans: list[Box] = field(default_factory=list)

    @property
    def covered(self) -> np.ndarray:
        """(h, W) bool: some decoded tile covers the pixel."""
        out = np.zeros(self.prob.shape, bool)
        for span in self.tile_spans:
            out[span.slices] = True
        return out


def blend_strip(
    grid: TileGrid, store: TileStore, y0: int, y1: int, floor: float = WEIGHT_FLOOR,
    ramps: dict | None = None,
) -> Strip:
    """Blend rows ``[y0, y1)``: each object over the tiles it was decoded in, then max.

    For one object, a pixel's probability is the weighted mean over the tiles that decoded
    the object and cover the pixel. Objects are combined by per-pixel maximum. Only the
    objects whose crops reach the strip are looked at. ``ramps``: a cache of each tile's
    weight ramps, shared between the strips of one raster.
    """
    ramps = {} if ramps is None else ramps
    h, w = y1 - y0, grid.width
    strip = Strip(y0, y1, np.zeros((h, w), np.float32), np.zeros((h, w), np.int32))
    prob, ids = strip.prob, strip.ids
    for index in store.indices:
        tile = grid.tiles[index]
        if tile.y0 < y1 and y0 < tile.y1:
            strip.tile_spans.append(
                Box(tile.x0, max(y0, tile.y0) - y0, tile.x1, min(y1, tile.y1) - y0)
            )
    extent = None
    for obj in store.objects:
        rows = store.object_rows(obj)
        if rows is None or rows[1] <= y0 or y1 <= rows[0]:
            continue
        tiles = [grid.tiles[i] for i in store.covering(obj)]
        region = _object_region(store, tiles, obj, y0, y1)
        if region is None:
            continue
        ry0, ry1, rx0, rx1 = region.y0, region.y1, region.x0, region.x1
        extent = (rx0, rx1) if extent is None else (min(extent[0], rx0), max(extent[1], rx1))
        num = np.zeros((ry1 - ry0, rx1 - rx0), np.float32)
        den = np.zeros_like(num)
        for tile in tiles:
            a0, a1 = max(ry0, tile.y0), min(ry1, tile.y1)
            b0, b1 = max(rx0, tile.x0), min(rx1, tile.x1)
            if a0 >= a1 or b0 >= b1:
                continue
            rows, cols = slice(a0 - tile.y0, a1 - tile.y0), slice(b0 - tile.x0, b1 - tile.x0)
            if tile.index not in ramps:
                ramps[tile.index] = tile_ramps(grid, tile, floor)
            wy, wx = ramps[tile.index]
            weight = np.maximum(wy[rows, None] * wx[None, cols], floor)
            p = store.read(tile, obj, rows, cols)
            out = (slice(a0 - ry0, a1 - ry0), slice(b0 - rx0, b1 - rx0))
            num[out] += weight * p
            den[out] += weight
        p_obj = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        target = (slice(ry0 - y0, ry1 - y0), slice(rx0, rx1))
        better = p_obj > prob[target]
        prob[target] = np.where(better, p_obj, prob[target])
        ids[target] = np.where(better, obj, ids[target])
    if extent is not None:
        strip.x0, strip.x1 = extent
    return strip


def _object_region(
    store: TileStore, tiles: list[Tile], obj: int, y0: int, y1: int
) -> Box | None:
    """The full-raster box bounding the object's crops within rows [y0, y1)."""
    box = None
    for tile in tiles:
        crop = store.crop_box(tile, obj)
        if crop is None:
            continue
        crop = crop.shifted(tile.x0, tile.y0)
        a0, a1 = max(y0, crop.y0), min(y1, crop.y1)
        if a0 >= a1:
            continue
        piece = Box(crop.x0, a0, crop.x1, a1)
        box = piece if box is None else box.union(piece)
    return box


def iter_strips(
    grid: TileGrid, store: TileStore, strip_height: int = 512, floor: float = WEIGHT_FLOOR
) -> Iterator[Strip]:
    """Blended row strips of ``strip_height`` rows covering the whole raster, top to bottom."""
    ramps: dict = {}
    for y0, y1 in row_strips(grid.height, strip_height):
        yield blend_strip(grid, store, y0, y1, floor, ramps)


# --------------------------------------------------------------------------- output rasters
def overview_factors(width: int, height: int, block: int = BLOCK) -> list[int]:
    """Overview decimations 2, 4, ... while the overview is still at least half a block."""
    factors, f = [], 2
    while max(width, height) / f >= block // 2:
        factors.append(f)
        f *= 2
    return factors


def default_strip_height(width: int) -> int:
    """Rows per output strip for a raster ``width`` px wide: a multiple of 64, 64 to 512."""
    return strip_rows(width, multiple=64, low=64, high=BLOCK)


def _profile(scene) -> dict:
    """The temporary tiled GeoTIFF a strip-by-strip output is written to before the COG copy.

    Fast ZSTD level 1: GDAL's COG copy decompresses it again and writes the deflate COG.
    """
    return {
        "driver": "GTiff",
        "width": scene.width,
        "height": scene.height,
        "count": 1,
        "dtype": "uint8",
        "crs": scene.crs,
        "transform": scene.transform,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "zstd",
        "zstd_level": 1,
        "BIGTIFF": "IF_SAFER",
    }


def write_blended(
    scene,
    grid: TileGrid,
    store: TileStore,
    directory: Path,
    threshold: float = 0.5,
    save_prob: bool = False,
    on_strip: Callable[[Strip, np.ndarray], None] | None = None,
    strip_height: int | None = None,
) -> dict[str, Path]:
    """Blend the stored tiles strip by strip into ``mask.tif`` (and ``prob.tif``) COGs.

    The mask is uint8: 1 water (blended probability above ``threshold``), 0 dry, 255 where
    ``scene.read_valid`` says nodata (its nodata value). The probability is uint8 0-255 with
    nodata pixels at 0 and an internal mask. Each strip is first written to a tiled GeoTIFF,
    overviews are added, then GDAL's COG driver copies it into ``directory``.
    ``on_strip(strip, water)`` sees every strip (e.g. to vectorise it). Strips are
    ``strip_height`` rows (default: :func:`~geofloodsam.raster.strips.strip_rows`, 64 to 512 rows).
    Returns the COG paths.
    """
    if strip_height is None:
        strip_height = default_strip_height(scene.width)
    plain = {"mask": directory / "mask_plain.tif"}
    if save_prob:
        plain["prob"] = directory / "prob_plain.tif"
    with ExitStack() as stack:
        profile = _profile(scene)
        mask_ds = stack.enter_context(rasterio.open(plain["mask"], "w", nodata=255, **profile))
        style_mask(mask_ds)  # colour table: water blue, nodata clear (survives the COG copy)
        prob_ds = None
        if save_prob:
            prob_ds = stack.enter_context(rasterio.open(plain["prob"], "w", **profile))
        for strip in iter_strips(grid, store, strip_height):
            window = Window(0, strip.y0, scene.width, strip.y1 - strip.y0)
            water, valid = _strip_water(scene, strip, window, threshold)
            if valid is None:  # every pixel valid: the bool mask is already 0/1 bytes
                mask_ds.write(water.view(np.uint8), 1, window=window)
            else:
                mask = water.astype(np.uint8)
                mask[~valid] = 255
                mask_ds.write(mask, 1, window=window)
            if prob_ds is not None:
                prob8 = np.zeros(water.shape, np.uint8)
                cols = slice(strip.x0, strip.x1)
                prob8[:, cols] = np.rint(strip.prob[:, cols] * 255.0).astype(np.uint8)
                if valid is not None:
                    prob8[~valid] = 0
                prob_ds.write(prob8, 1, window=window)
                alpha = np.full(water.shape, 255, np.uint8) if valid is None else (
                    valid.astype(np.uint8) * 255
                )
                prob_ds.write_mask(alpha, window=window)
            if on_strip is not None:
                on_strip(strip, water)
    factors = overview_factors(scene.width, scene.height)
    cogs = {}
    for name, path in plain.items():
        if factors:
            with rasterio.open(path, "r+") as ds:
                method = Resampling.nearest if name == "mask" else Resampling.average
                ds.build_overviews(factors, method)
        cogs[name] = directory / f"{name}.tif"
        rasterio.shutil.copy(
            path, cogs[name], driver="COG", compress="deflate", blocksize=BLOCK,
            BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS",
        )
        path.unlink()
    return cogs


def _strip_water(
    scene, strip: Strip, window: Window, threshold: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """(h, W) bool water of ``strip`` and its valid mask (None: the scene has no nodata).

    Only the strip's object columns are thresholded; the rest is dry by construction.
    """
    water = np.zeros(strip.prob.shape, bool)
    cols = slice(strip.x0, strip.x1)
    np.greater(strip.prob[:, cols], threshold, out=water[:, cols])
    if scene.all_valid:
        return water, None
    valid = scene.read_valid(window)
    water &= valid
    return water, valid
