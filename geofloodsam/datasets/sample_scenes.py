"""Deterministic synthetic sample scenes with exact ground truth (no external data).

A scene is painted in reflectance space (R, G, B, NIR, 0-1): procedural land (a patchwork of
fields with hedges and tracks, woods, multi-octave brightness noise), then water: a big lake,
meandering rivers (sine-generated curves), flooded fields beside the river and small ponds. The
truth mask is the water painted, so it is exact. Every random choice comes from one seeded
``numpy.random.Generator``, and the GeoTIFFs carry no timestamps, so files are byte-for-byte
reproducible.

Scenes of ``sample_tiles/`` (``geofloodsam make-samples [OUTDIR]``)::

    make_samples(outdir)            # riverside_rgb.* and delta_4band.* (see sample_tiles/README.md)

Each sample scene has a *before* scene (``<stem>_before.*``: the same land, lake, rivers and
ponds at a lower water level, no flood) and the class truth of the pair
(``<stem>_change_truth.tif``: 1 flood, 2 permanent water, 3 receded, 0 dry, 255 nodata).
:func:`before_after` writes such a pair for any recipe; :func:`lake_river_scene` lays one out
from a seed.

Small generators for tests (write into any folder, return a :class:`SampleFiles`)::

    lake_scene(tmp_path)            # 2500x2500 RGB uint8, EPSG:32633, 2 m; one lake ~1500 px
                                    # across in the middle (it spans 4 tiles of 1024/256), no
                                    # other water; files.lake_point is its deepest pixel
    river_scene(tmp_path, 1500, 1200)   # smaller RGB scene: a river, flooded fields, two ponds
    synthetic_scene(tmp_path, "x", SceneRecipe(width, height, seed, lake=..., rivers=...))
                                    # any mix (a SceneRecipe holds the whole layout)

Each writes ``<stem>.tif``, ``<stem>_truth.tif`` (uint8 1 water / 0 dry / 255 nodata, same
grid) and, when it has prompts, ``<stem>_prompts_utm.geojson`` (raster CRS) and
``<stem>_prompts_4326.geojson`` (EPSG:4326) holding the same prompts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from scipy import ndimage

from geofloodsam.datasets.truth_prompts import deepest_point
from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import atomic_write
from geofloodsam.geo import transforms
from geofloodsam.geo.boxes import Box

# Reflectance (R, G, B, NIR) of each land cover.
LAND = {
    "crop": (0.055, 0.095, 0.045, 0.42),
    "ripe": (0.17, 0.155, 0.085, 0.31),
    "soil": (0.20, 0.16, 0.12, 0.26),
    "grass": (0.095, 0.125, 0.065, 0.34),
    "stubble": (0.24, 0.21, 0.15, 0.30),
}
FOREST = (0.035, 0.065, 0.035, 0.33)
HEDGE = (0.04, 0.07, 0.04, 0.30)
TRACK = (0.23, 0.21, 0.18, 0.26)
SAND = (0.21, 0.19, 0.15, 0.24)
REEDS = (0.07, 0.09, 0.05, 0.22)
DEEP = (0.022, 0.040, 0.058, 0.012)  # lake: dark blue-green, smooth
SHALLOW = (0.040, 0.065, 0.065, 0.020)
RIVER = (0.035, 0.058, 0.062, 0.018)
FLOOD = (0.082, 0.074, 0.052, 0.030)  # turbid flood water over fields
MUD = (0.115, 0.105, 0.080, 0.150)  # wet ground left by a lower water level (``before``)
#: the ``before`` stage: rivers at this fraction of their width, the lake shore this many
#: metres (at least 2 px) further in; no flood
LOW_RIVER = 0.75
LAKE_DROP_M = 12.0
STAGES = ("after", "before")

RGB_SCALE = 0.26  # reflectance shown as white in the uint8 RGB rendering
RGB_GAMMA = 0.8


# --------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class LakeSpec:
    """An irregular lake: ellipse centre/radii in pixels, shoreline roughness (0-0.3)."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float = 0.0  # radians
    roughness: float = 0.12


@dataclass(frozen=True)
class RiverSpec:
    """A meandering river: start pixel, mean heading (radians, 0 = +x, pi/2 = down), width px."""

    x0: float
    y0: float
    heading: float
    width: float
    wavelength: float = 700.0  # px along the channel per meander
    amplitude: float = 1.1  # max deviation of the heading from the mean (radians)
    flood: float = 0.0  # 0-1: how much of the floodplain beside it is flooded
    flood_reach: float = 220.0  # px from the channel that floods can reach


@dataclass(frozen=True)
class SceneRecipe:
    """Everything that decides a scene's pixels and grid: :func:`paint` and
    :func:`synthetic_scene` draw the same scene from the same recipe.

    ``width`` x ``height`` px at ``metres`` per pixel; ``origin`` is the top-left corner in
    ``crs``. ``kind``: ``"rgb"`` (3-band uint8, JPEG/YCbCr) or ``"4band"`` (uint16 R, G, B,
    NIR reflectance x 10000, deflate, nodata 0). ``valid`` (h, w bool) marks the imaged area;
    pixels outside it are nodata (``4band`` only). ``fields`` scales field sizes;
    ``overviews`` are internal overview factors (nearest). ``stage="before"``: the same place
    at a lower water level and without the flood (see :func:`paint`).
    """

    width: int
    height: int
    seed: int = 0
    metres: float = 2.0
    crs: str = "EPSG:32633"
    origin: tuple[float, float] = (500000.0, 5000000.0)
    kind: str = "rgb"
    lake: LakeSpec | None = None
    rivers: tuple[RiverSpec, ...] = ()
    ponds: int = 0
    valid: np.ndarray | None = field(default=None, compare=False, repr=False)
    fields: float = 1.0
    overviews: tuple[int, ...] = ()
    stage: str = "after"


@dataclass
class Painted:
    """A painted scene: reflectance, water, nodata, and the parts prompts are placed on."""

    refl: np.ndarray  # (4, h, w) float32 R, G, B, NIR
    water: np.ndarray  # (h, w) bool
    valid: np.ndarray  # (h, w) bool
    lake: np.ndarray | None  # (h, w) bool, the lake (if any)
    centerlines: list[np.ndarray]  # (N, 2) x, y pixel centres of each river
    ponds: list[tuple[float, float, float]]  # x, y, radius px
    flood: np.ndarray  # (h, w) bool flooded land


@dataclass
class SampleFiles:
    """The files of one written scene and its prompts in pixel coordinates."""

    image: Path
    truth: Path
    prompts_utm: Path | None
    prompts_4326: Path | None
    crs: str
    transform: Affine
    width: int
    height: int
    points: list[tuple[float, float, int, int]] = field(default_factory=list)  # x, y, label, obj
    boxes: list[Box] = field(default_factory=list)  # pixel edges
    lake_point: tuple[float, float] | None = None  # x, y pixel centre deepest in the lake


# --------------------------------------------------------------------------- noise
# Pixels are computed with arithmetic, sqrt and lookups only: numpy's vectorised sin/pow may
# use different SIMD code on different CPUs (last-bit differences), which would break the
# byte-for-byte reproducibility of the sample files. 1-D curves use the scalar libm via _sin.
def _sin(values: np.ndarray) -> np.ndarray:
    """Element-wise sine of a 1-D array through the scalar ``math.sin``."""
    return np.fromiter((math.sin(v) for v in np.asarray(values, np.float64)), np.float64)


def _cubic_weights(n: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Catmull-Rom weights (n, 4), scaled to unit variance, and grid indices (n, 4)."""
    pos = (np.arange(n, dtype=np.float64) + 0.5) / cell
    base = np.floor(pos).astype(np.int64)
    t = pos - base
    t2, t3 = t * t, t * t * t
    weights = np.stack(
        [
            -0.5 * t3 + t2 - 0.5 * t,
            1.5 * t3 - 2.5 * t2 + 1.0,
            -1.5 * t3 + 2.0 * t2 + 0.5 * t,
            0.5 * t3 - 0.5 * t2,
        ],
        axis=1,
    )
    weights /= np.sqrt((weights**2).sum(axis=1, keepdims=True))
    return weights, base[:, None] + np.arange(4)


def value_noise(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise of unit variance with features ``cell`` px across (cubic value noise).

    Separable Catmull-Rom upsampling of a random grid in plain element-wise numpy (no BLAS,
    no transcendental functions), so that the result is the same on every machine.
    """
    h, w = shape
    cell = max(1, int(round(cell)))
    grid = rng.standard_normal((h // cell + 4, w // cell + 4))
    wy, iy = _cubic_weights(h, cell)
    wx, ix = _cubic_weights(w, cell)
    cols = np.zeros((grid.shape[0], w), np.float64)  # interpolate along x on the small grid
    for k in range(4):
        cols += wx[None, :, k] * grid[:, ix[:, k]]
    cols = cols.astype(np.float32)
    wy = wy.astype(np.float32)
    out = np.zeros((h, w), np.float32)
    for k in range(4):  # then along y: whole-row gathers
        tmp = cols[iy[:, k]]
        tmp *= wy[:, k, None]
        out += tmp
    return out


def fbm(
    shape: tuple[int, int], cell: float, rng: np.random.Generator, octaves: int = 4
) -> np.ndarray:
    """Multi-octave (fractal) noise, largest features ``cell`` px, unit-ish variance."""
    out = np.zeros(shape, np.float32)
    norm = 0.0
    for k in range(octaves):
        c = cell / 2**k
        if c < 2:
            break
        amp = 0.55**k
        out += amp * value_noise(shape, c, rng)
        norm += amp * amp
    return out / np.float32(math.sqrt(norm))


# --------------------------------------------------------------------------- land
def canopy_texture(shape: tuple[int, int], rng: np.random.Generator, metres: float) -> np.ndarray:
    """Brightness factor of tree canopy: crowns at fine resolution, a soft mottle when coarse."""
    if metres < 5:
        return 1 + 0.18 * value_noise(shape, 6 / metres, rng)
    return 1 + 0.06 * value_noise(shape, 4, rng)


def paint_land(
    shape: tuple[int, int], rng: np.random.Generator, metres: float, fields: float = 1.0
) -> np.ndarray:
    """(4, h, w) reflectance of fields, hedges, tracks and woods at ``metres`` per pixel.

    ``fields`` scales the size of the fields (1: blocks of 180-520 m, parcels of 90-320 m).
    """
    h, w = shape
    m = 1.0 / metres  # pixels per metre
    f = m * fields
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(-0.5, 0.5)
    warp = 30 * m * value_noise(shape, 500 * m, rng)
    u = xx * math.cos(theta) + yy * math.sin(theta) + warp
    v = -xx * math.sin(theta) + yy * math.cos(theta) - warp
    span = 2 * (h + w)
    # blocks along v, parcels along u (offset per block so that parcels do not line up)
    vb = np.cumsum(rng.uniform(180, 520, size=int(span / (180 * f)) + 4) * f) - span
    ub = np.cumsum(rng.uniform(90, 320, size=int(span / (90 * f)) + 4) * f) - span
    iv = np.searchsorted(vb, v)
    shift = rng.uniform(0, 400 * f, size=vb.size + 1).astype(np.float32)
    iu = np.searchsorted(ub, u + shift[iv])
    parcel = iv * (ub.size + 1) + iu
    n_parcels = (vb.size + 1) * (ub.size + 1)
    names = list(LAND)
    kinds = rng.choice(len(names), size=n_parcels, p=[0.3, 0.2, 0.2, 0.2, 0.1])
    bright = rng.uniform(0.85, 1.15, size=n_parcels).astype(np.float32)
    palette = np.array([LAND[n] for n in names], np.float32)
    kind = kinds[parcel]
    refl = palette[kind].transpose(2, 0, 1) * bright[parcel]
    # plough / crop rows, visible at fine resolution only
    if metres < 5:
        period = rng.uniform(5, 9, size=n_parcels).astype(np.float32)[parcel] * 1.0
        phase = (u / period) % 1  # a parabolic ridge per row, arithmetic only
        ridge = 8 * phase * (1 - phase) - 1
        rows = 1 + 0.05 * ridge * (kind != names.index("grass"))
        refl *= rows.astype(np.float32)
    # hedges and tracks along block borders
    dv = np.minimum(v - vb[np.clip(iv - 1, 0, vb.size - 1)], vb[np.clip(iv, 0, vb.size - 1)] - v)
    border_kind = rng.integers(0, 3, size=vb.size + 1)[iv]  # 0 nothing, 1 hedge, 2 track
    hedge = (dv < 6 * m + 1) & (border_kind == 1)
    track = (dv < 3 * m + 1) & (border_kind == 2)
    refl[:, hedge] = np.array(HEDGE, np.float32)[:, None]
    refl[:, track] = np.array(TRACK, np.float32)[:, None]
    # woods: blobs of dark canopy with crown texture
    woods = fbm(shape, 900 * m, rng, octaves=4) > 0.9
    crowns = canopy_texture(shape, rng, metres)
    canopy = np.array(FOREST, np.float32)[:, None] * crowns[woods]
    refl[:, woods] = canopy
    # illumination / moisture variation over the whole scene
    refl *= (1 + 0.08 * fbm(shape, 1200 * m, rng, octaves=5))[None]
    if metres < 5:  # grain that a coarse sensor would not resolve
        refl *= (1 + 0.03 * value_noise(shape, 3 * m, rng))[None]
    return refl


# --------------------------------------------------------------------------- water
def lake_mask(shape: tuple[int, int], spec: LakeSpec, rng: np.random.Generator) -> np.ndarray:
    """One connected lake without islands (bool)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - spec.cx, yy - spec.cy
    ca, sa = math.cos(spec.angle), math.sin(spec.angle)
    r = np.sqrt(((dx * ca + dy * sa) / spec.rx) ** 2 + ((-dx * sa + dy * ca) / spec.ry) ** 2)
    cell = 0.6 * min(spec.rx, spec.ry)
    mask = r + spec.roughness * fbm(shape, cell, rng, octaves=4) < 1
    labels, n = ndimage.label(mask)
    if n == 0:
        raise ValueError("lake spec gives no lake")
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)


def river_centerline(
    shape: tuple[int, int], spec: RiverSpec, rng: np.random.Generator
) -> np.ndarray:
    """(N, 2) x, y points 1 px apart along a meandering channel until it leaves the scene.

    A Kinoshita curve (the classic meander model): the heading swings around the mean heading
    with a skewed sine whose amplitude and wavelength drift slowly, so no two bends are alike.
    """
    h, w = shape
    n_max = int(8 * (h + w))
    s = np.arange(n_max, dtype=np.float64)
    slow = [rng.uniform(0, 2 * np.pi, 3), rng.uniform(2.5, 4.5, 3)]

    def wobble(k: int) -> np.ndarray:  # smooth random curve of s, range about -1..1
        return _sin(s / (slow[1][k] * spec.wavelength) * 2 * np.pi + slow[0][k])

    wavelength = spec.wavelength * (1 + 0.22 * wobble(0))
    amplitude = spec.amplitude * (1 + 0.2 * wobble(1))
    phi = np.cumsum(2 * np.pi / wavelength) + rng.uniform(0, 2 * np.pi)
    skew = rng.uniform(0.1, 0.3)
    heading = spec.heading + 0.12 * wobble(2) + amplitude * (
        _sin(phi) + skew * amplitude**2 * _sin(3 * phi + np.pi / 2)
    )
    x = spec.x0 + np.cumsum(_sin(heading + np.pi / 2))
    y = spec.y0 + np.cumsum(_sin(heading))
    margin = spec.width * 2
    outside = ~((x >= -margin) & (x < w + margin) & (y >= -margin) & (y < h + margin))
    stop = int(np.argmax(outside)) if outside.any() else n_max
    return np.column_stack([x[:stop], y[:stop]])


def distance_to(
    shape: tuple[int, int], points: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (px) from every pixel to the nearest of ``points`` and that point's value."""
    h, w = shape
    pad = int(np.ceil(np.abs(points).max())) if points.size else 0
    pad = max(0, min(pad, 4 * max(h, w)) - max(h, w)) + 2
    seeds = np.ones((h + 2 * pad, w + 2 * pad), dtype=bool)
    value_grid = np.zeros(seeds.shape, np.float32)
    cols = np.clip(np.floor(points[:, 0]).astype(int) + pad, 0, seeds.shape[1] - 1)
    rows = np.clip(np.floor(points[:, 1]).astype(int) + pad, 0, seeds.shape[0] - 1)
    seeds[rows, cols] = False
    value_grid[rows, cols] = values
    dist, (ir, ic) = ndimage.distance_transform_edt(seeds, return_indices=True)
    crop = (slice(pad, pad + h), slice(pad, pad + w))
    return dist[crop].astype(np.float32), value_grid[ir[crop], ic[crop]]


def paint(recipe: SceneRecipe) -> Painted:
    """Paint land, then the lake, rivers with banks and floods, and ponds of ``recipe``.

    ``recipe.stage="before"`` paints the same land, lake, rivers and ponds (the same random
    draws) at a lower water level and without the flood: rivers at :data:`LOW_RIVER` of their
    width, the lake shore :data:`LAKE_DROP_M` further in, wet mud (:data:`MUD`) where the
    water will be.
    """
    stage, metres, fields = recipe.stage, recipe.metres, recipe.fields
    lake, rivers, ponds, valid = recipe.lake, recipe.rivers, recipe.ponds, recipe.valid
    if stage not in STAGES:
        raise GeofloodsamError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}.")
    before = stage == "before"
    rng = np.random.default_rng(recipe.seed)
    shape = (recipe.height, recipe.width)
    h, w = shape
    m = 1.0 / metres
    refl = paint_land(shape, rng, metres, fields)
    water = np.zeros(shape, bool)
    occupied = water  # the water of the ``after`` stage: what the layout is placed around
    if before:
        occupied = np.zeros(shape, bool)
    flood = np.zeros(shape, bool)
    mud = np.array(MUD, np.float32)[:, None]
    lake_area = None
    if lake is not None:
        lake_area = lake_mask(shape, lake, rng)
        shore = ndimage.distance_transform_edt(lake_area).astype(np.float32)
        lake_now = lake_area
        if before:
            occupied |= lake_area
            lake_now = shore > max(2.0, LAKE_DROP_M * m)
        depth = np.clip(shore / (60 * m + 8), 0, 1)[lake_now]
        deep, shallow = np.array(DEEP, np.float32), np.array(SHALLOW, np.float32)
        ring = ndimage.binary_dilation(lake_area, iterations=max(2, int(10 * m))) & ~lake_area
        refl[:, ring] = np.array(REEDS, np.float32)[:, None]
        if before:
            refl[:, lake_area & ~lake_now] = mud
        refl[:, lake_now] = deep[:, None] * depth + shallow[:, None] * (1 - depth)
        water |= lake_now
        lake_area = lake_now
    centerlines = []
    for spec in rivers:
        line = river_centerline(shape, spec, rng)
        centerlines.append(line)
        s = np.arange(len(line), dtype=np.float32)
        widths = spec.width * (1 + 0.25 * _sin(2 * np.pi * s / (2.3 * spec.wavelength)))
        dist, nearest = distance_to(shape, line, s)
        nearest = nearest.astype(np.int64)
        half = widths[nearest] / 2
        channel = (dist <= half) & ~occupied
        bank = (dist <= half + 3 + 2 * m) & ~channel & ~occupied
        trees = (dist <= half + 8 + 30 * m * (1 + fbm(shape, 200 * m, rng, 3))) & ~channel
        trees &= ~occupied
        crowns = canopy_texture(shape, rng, metres)
        refl[:, trees] = np.array(FOREST, np.float32)[:, None] * crowns[trees]
        refl[:, bank] = np.array(SAND, np.float32)[:, None]
        if spec.flood > 0:
            # one stretch of the floodplain (around a third of the channel) is under water
            cx, cy = line[int(rng.uniform(0.3, 0.6) * len(line))]
            radius = len(line) / 6 * (1 + 0.35 * fbm(shape, len(line) / 10, rng, octaves=3))
            yy, xx = np.ogrid[0:h, 0:w]
            zone = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) < radius
            # ground rises away from the river, with bumps: water fills what lies low
            ground = dist / spec.flood_reach + 0.45 * fbm(shape, 0.7 * spec.flood_reach, rng)
            wet = zone & (ground < spec.flood)
            wet &= ~channel & ~occupied
            wet = ndimage.binary_opening(wet, iterations=3)
            # keep the flooded land that touches the channel (a flood spreads from the river)
            labels, _ = ndimage.label(wet | channel)
            touching = np.unique(labels[channel])
            wet &= np.isin(labels, touching[touching > 0])
            if before:
                occupied |= wet
            else:
                under = refl[:, wet]
                refl[:, wet] = 0.85 * np.array(FLOOD, np.float32)[:, None] + 0.15 * under * 0.5
                flood |= wet
                water |= wet
        if before:
            occupied |= channel
            low = channel & (dist <= LOW_RIVER * half)
            refl[:, channel & ~low] = mud
            channel = low
        refl[:, channel] = np.array(RIVER, np.float32)[:, None]
        water |= channel
    pond_list = []
    tries = 0
    while len(pond_list) < ponds and tries < 200 * (ponds + 1):
        tries += 1
        r = rng.uniform(15, 45)
        edge = r + min(60.0, w / 8, h / 8)
        if w - edge <= edge or h - edge <= edge:
            break
        cx, cy = rng.uniform(edge, w - edge), rng.uniform(edge, h - edge)
        y0, y1 = max(0, int(cy - 3 * r)), min(h, int(cy + 3 * r) + 1)
        x0, x1 = max(0, int(cx - 3 * r)), min(w, int(cx + 3 * r) + 1)
        if occupied[y0:y1, x0:x1].any():
            continue
        if valid is not None and not valid[int(cy), int(cx)]:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rho = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        sin_t, cos_t = (yy - cy) / np.maximum(rho, 1e-9), (xx - cx) / np.maximum(rho, 1e-9)
        phase = rng.uniform(0, 2 * np.pi)  # wobble = 1 + 0.15 sin(3 angle + phase)
        sin3 = sin_t * (3 - 4 * sin_t * sin_t)
        cos3 = cos_t * (4 * cos_t * cos_t - 3)
        wobble = 1 + 0.15 * (sin3 * math.cos(phase) + cos3 * math.sin(phase))
        disk = rho < r * wobble
        sub = (slice(y0, y1), slice(x0, x1))
        refl[(slice(None), *sub)][:, disk] = np.array(DEEP, np.float32)[:, None] * 1.15
        water[sub] |= disk
        if before:
            occupied[sub] |= disk
        pond_list.append((float(cx), float(cy), float(r)))
    if valid is None:
        valid = np.ones(shape, bool)
    return Painted(refl, water, valid, lake_area, centerlines, pond_list, flood)


# --------------------------------------------------------------------------- encoding
def to_rgb8(refl: np.ndarray) -> np.ndarray:
    """(4|3, h, w) reflectance -> (3, h, w) uint8 display RGB."""
    levels = 4095
    lut = (np.linspace(0, 1, levels + 1) ** RGB_GAMMA * 255 + 0.5).astype(np.uint8)
    idx = np.clip(np.round(refl[:3] * (levels / RGB_SCALE)), 0, levels).astype(np.int64)
    return lut[idx]


def to_uint16(refl: np.ndarray, valid: np.ndarray, step: int = 20) -> np.ndarray:
    """(4, h, w) reflectance -> uint16 x 10000 in multiples of ``step`` (0 is nodata).

    The quantisation (0.002 reflectance by default, below what the eye or SAM sees after the
    stretch) keeps the deflated file small.
    """
    out = np.round(refl * (10000 / step)) * step
    out = np.clip(out, step, 10000).astype(np.uint16)
    out[:, ~valid] = 0
    return out


def truth_of(painted: Painted) -> np.ndarray:
    """uint8 truth: 1 water, 0 dry, 255 nodata."""
    truth = painted.water.astype(np.uint8)
    truth[~painted.valid] = 255
    return truth


# --------------------------------------------------------------------------- writing
def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (no half-written file)."""
    atomic_write(path, write)


def write_geotiff(
    path: Path,
    data: np.ndarray,
    crs: str,
    transform: Affine,
    nodata: float | None = None,
    jpeg: bool = False,
    overviews: tuple[int, ...] = (),
) -> None:
    """Write (B, h, w) as a tiled GeoTIFF (deflate, or JPEG/YCbCr for RGB uint8), atomically."""
    import rasterio
    from rasterio.enums import Resampling

    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    if jpeg:
        profile.update(compress="jpeg", photometric="ycbcr", jpeg_quality=88, interleave="pixel")
    else:
        profile.update(compress="deflate", zlevel=6, predictor=2, interleave="pixel")

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            if overviews:
                dst.build_overviews(list(overviews), Resampling.nearest)

    _atomic_write(path, write)


def _feature(geom: dict, label: int, obj: int | None) -> dict:
    return {"type": "Feature", "properties": {"object": obj, "label": label}, "geometry": geom}


def write_prompts(
    path_utm: Path,
    path_4326: Path,
    crs: str,
    transform: Affine,
    points: list[tuple[float, float, int, int]],
    boxes: list[Box],
) -> None:
    """Write the same prompts as GeoJSON in the raster CRS and in EPSG:4326.

    ``points``: x, y pixel, label, object; ``boxes``: pixel edges (own objects).
    Coordinates are rounded (1e-6 m, 1e-12 degree) so that the files do not depend on the
    last bit of a projection library.
    """
    import pyproj
    import shapely

    geoms = []
    for x, y, _, _ in points:
        wx, wy = transforms.pixel_to_world(transform, x, y)
        geoms.append(shapely.Point(float(wx), float(wy)))
    for box in boxes:
        xs, ys = transforms.pixel_to_world(
            transform, np.array([box.x0, box.x1]), np.array([box.y0, box.y1])
        )
        geoms.append(shapely.box(xs.min(), ys.min(), xs.max(), ys.max()))
    geoms = [shapely.transform(g, lambda c: np.round(c, 6)) for g in geoms]
    lonlat = transforms.reproject_geometries(geoms, crs, "EPSG:4326", densify_points=33)
    lonlat = [shapely.transform(g, lambda c: np.round(c, 12)) for g in lonlat]
    props = [(label, obj) for _, _, label, obj in points] + [(1, None) for _ in boxes]
    epsg = pyproj.CRS.from_user_input(crs).to_epsg()
    for path, gs, crs_name in (
        (path_utm, geoms, f"urn:ogc:def:crs:EPSG::{epsg}"),
        (path_4326, lonlat, "urn:ogc:def:crs:OGC:1.3:CRS84"),
    ):
        collection = {
            "type": "FeatureCollection",
            "name": path.stem,
            "crs": {"type": "name", "properties": {"name": crs_name}},
            "features": [
                _feature(shapely.geometry.mapping(g), label, obj)
                for g, (label, obj) in zip(gs, props, strict=True)
            ],
        }
        text = json.dumps(collection, indent=None, separators=(",", ":"))
        text = text.replace('{"type":"Feature"', '\n{"type":"Feature"') + "\n"
        _atomic_write(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------- prompts
def _on_channel(painted: Painted, line: np.ndarray, frac: float) -> tuple[float, float] | None:
    """The centreline point nearest ``frac`` of its length that lies in valid water."""
    h, w = painted.water.shape
    order = np.argsort(np.abs(np.arange(len(line)) - frac * len(line)))
    for i in order[:: max(1, len(line) // 400)]:
        x, y = line[i]
        c, r = int(x), int(y)
        if 0 <= c < w and 0 <= r < h and painted.water[r, c] and painted.valid[r, c]:
            if painted.lake is None or not painted.lake[r, c]:
                return float(c) + 0.5, float(r) + 0.5
    return None


def _land_near(painted: Painted, x: float, y: float, offset: float) -> tuple[float, float] | None:
    """A dry valid pixel ``offset`` px from (x, y), searched around a circle."""
    h, w = painted.water.shape
    for k in range(16):
        a = k * np.pi / 8
        c, r = int(x + offset * math.cos(a)), int(y + offset * math.sin(a))
        if 0 <= c < w and 0 <= r < h and painted.valid[r, c]:
            box = painted.water[max(0, r - 10) : r + 11, max(0, c - 10) : c + 11]
            if not box.any():
                return float(c) + 0.5, float(r) + 0.5
    return None


def default_prompts(painted: Painted) -> tuple[list, list, tuple[float, float] | None]:
    """Points (x, y, label, object) and boxes for a painted scene.

    Object 1: one point deepest in the lake. Next: each river gets two water points and one
    land point (label 0) grouped as one object. Then one point on the largest flooded area.
    Boxes: around the two largest ponds, with a margin.
    """
    points: list[tuple[float, float, int, int]] = []
    lake_point = None
    obj = 0
    if painted.lake is not None:
        lake_point = tuple(deepest_point(painted.lake & painted.valid))
        obj += 1
        points.append((*lake_point, 1, obj))
    for line in painted.centerlines:
        a, b = _on_channel(painted, line, 0.3), _on_channel(painted, line, 0.6)
        if a is None or b is None:
            continue
        obj += 1
        points += [(*a, 1, obj), (*b, 1, obj)]
        land = next(
            (p for r in (80, 160, 240, 320) if (p := _land_near(painted, *a, r)) is not None),
            None,
        )
        if land is not None:
            points.append((*land, 0, obj))
    if painted.flood.any():
        labels, n = ndimage.label(painted.flood & painted.valid)
        if n:
            biggest = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
            obj += 1
            points.append((*deepest_point(biggest), 1, obj))
    boxes = []
    for cx, cy, r in sorted(painted.ponds, key=lambda p: -p[2])[:2]:
        half = 1.8 * r  # the pond reaches 1.15 r; the rest is margin
        x0, y0 = math.floor(cx - half), math.floor(cy - half)
        boxes.append(Box(x0, y0, math.ceil(cx + half), math.ceil(cy + half)))
    return points, boxes, lake_point


# --------------------------------------------------------------------------- scenes
def synthetic_scene(
    outdir: str | Path, stem: str, recipe: SceneRecipe, *, prompts: bool = True
) -> SampleFiles:
    """Paint the scene of ``recipe`` and write it as ``<stem>.*``; see the module docstring.

    ``prompts``: also write the default prompts (when the scene has any).
    """
    kind, crs, metres, origin = recipe.kind, recipe.crs, recipe.metres, recipe.origin
    overviews, width, height = recipe.overviews, recipe.width, recipe.height
    if kind not in ("rgb", "4band"):
        raise GeofloodsamError(f"sample kind must be 'rgb' or '4band', got {kind!r}.")
    if recipe.valid is not None and kind == "rgb":
        raise GeofloodsamError("a nodata region needs kind='4band' (JPEG RGB has no nodata).")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    painted = paint(recipe)
    transform = Affine(metres, 0.0, origin[0], 0.0, -metres, origin[1])
    image = outdir / f"{stem}.tif"
    truth_path = outdir / f"{stem}_truth.tif"
    if kind == "rgb":
        write_geotiff(image, to_rgb8(painted.refl), crs, transform, jpeg=True, overviews=overviews)
    else:
        data = to_uint16(painted.refl, painted.valid)
        write_geotiff(image, data, crs, transform, nodata=0, overviews=overviews)
    write_geotiff(truth_path, truth_of(painted)[None], crs, transform, nodata=255)
    points, boxes, lake_point = default_prompts(painted)
    files = SampleFiles(
        image, truth_path, None, None, crs, transform, width, height, points, boxes, lake_point
    )
    if prompts and (points or boxes):
        files.prompts_utm = outdir / f"{stem}_prompts_utm.geojson"
        files.prompts_4326 = outdir / f"{stem}_prompts_4326.geojson"
        write_prompts(files.prompts_utm, files.prompts_4326, crs, transform, points, boxes)
    return files


def lake_scene(
    outdir: str | Path,
    size: int = 2500,
    seed: int = 0,
    *,
    diameter: float | None = None,
    stem: str = "lake",
    kind: str = "rgb",
    crs: str = "EPSG:32633",
    metres: float = 2.0,
) -> SampleFiles:
    """A ``size`` x ``size`` scene with one lake in the middle and no other water.

    The lake is about ``diameter`` px across (default 0.6 * size: 1500 px at 2500, spanning the
    four central tiles of a 1024/256 grid). ``files.lake_point`` is its deepest pixel centre and
    the prompt files hold that single point.
    """
    d = 0.6 * size if diameter is None else diameter
    lake = LakeSpec(size / 2, size / 2, d / 2, d / 2 * 0.85, angle=0.4, roughness=0.1)
    recipe = SceneRecipe(size, size, seed, metres=metres, crs=crs, kind=kind, lake=lake)
    return synthetic_scene(outdir, stem, recipe)


def river_scene(
    outdir: str | Path, width: int = 1500, height: int = 1200, seed: int = 1, *,
    stem: str = "river", stage: str = "after",
) -> SampleFiles:
    """A small RGB scene: a river across it with flooded fields, and two ponds (no lake)."""
    river = RiverSpec(-20, height * 0.45, 0.0, width=36, wavelength=600, flood=0.6)
    recipe = SceneRecipe(width, height, seed, rivers=(river,), ponds=2, stage=stage)
    return synthetic_scene(outdir, _stage_stem(stem, stage), recipe)


def lake_river_scene(
    outdir: str | Path, seed: int, width: int = 1600, height: int = 1400, *,
    stem: str | None = None, stage: str = "after",
) -> SampleFiles:
    """An RGB scene (2 m, EPSG:32633) whose lake, flooded river and ponds are laid out by
    ``seed``: the generator of before/after pairs beyond the two committed ones."""
    rng = np.random.default_rng([seed, 22])
    lake = LakeSpec(
        width * rng.uniform(0.55, 0.8), height * rng.uniform(0.15, 0.35),
        width * rng.uniform(0.12, 0.2), height * rng.uniform(0.1, 0.16),
        angle=rng.uniform(-0.5, 0.5),
    )
    river = RiverSpec(
        -20, height * rng.uniform(0.55, 0.75), rng.uniform(-0.2, 0.1),
        width=rng.uniform(30, 44), wavelength=rng.uniform(550, 800), flood=rng.uniform(0.55, 0.65),
    )
    recipe = SceneRecipe(width, height, seed, lake=lake, rivers=(river,), ponds=3, stage=stage)
    return synthetic_scene(outdir, _stage_stem(stem or f"pair{seed}", stage), recipe)


def _stage_stem(stem: str, stage: str) -> str:
    """``stem`` for the after scene, ``<stem>_before`` for the before scene."""
    return stem if stage == "after" else f"{stem}_before"


def riverside_rgb(outdir: str | Path, stage: str = "after") -> SampleFiles:
    """``riverside_rgb``: 3000x2400 RGB uint8, EPSG:32633, 2 m (see sample_tiles/README.md)."""
    lake = LakeSpec(2050, 720, 820, 560, angle=0.25, roughness=0.12)
    river = RiverSpec(-30, 1750, -0.12, width=42, wavelength=760, amplitude=1.15, flood=0.62)
    recipe = SceneRecipe(
        3000, 2400, seed=3, metres=2.0, crs="EPSG:32633", origin=(604000.0, 5052000.0),
        kind="rgb", lake=lake, rivers=(river,), ponds=4, stage=stage,
    )
    return synthetic_scene(outdir, _stage_stem("riverside_rgb", stage), recipe)


def delta_valid(width: int, height: int) -> np.ndarray:
    """The imaged area of the delta scene: a slanted swath edge left, a cut corner top right."""
    yy, xx = np.mgrid[0:height, 0:width]
    left = xx > 140 + 0.16 * yy - 0.00002 * (yy - height / 2) * (yy - height / 2)
    corner = (xx - (width - 520)) * 0.9 + (350 - yy) < 0
    return left & corner


def delta_4band(outdir: str | Path, stage: str = "after") -> SampleFiles:
    """``delta_4band``: 2600x2000 uint16 R,G,B,NIR, EPSG:32617, 10 m, nodata border."""
    width, height = 2600, 2000
    lake = LakeSpec(1480, 1360, 840, 470, angle=-0.08, roughness=0.14)
    rivers = (
        RiverSpec(1250, -30, math.pi / 2, width=34, wavelength=520, amplitude=0.9, flood=0.55,
                  flood_reach=120),
        RiverSpec(1500, -30, math.pi / 2 + 0.35, width=22, wavelength=420, amplitude=0.8),
    )
    recipe = SceneRecipe(
        width, height, seed=7, metres=10.0, crs="EPSG:32617", origin=(412000.0, 3312000.0),
        kind="4band", lake=lake, rivers=rivers, ponds=5, valid=delta_valid(width, height),
        fields=1.8, overviews=(4, 16), stage=stage,
    )
    return synthetic_scene(outdir, _stage_stem("delta_4band", stage), recipe)


SAMPLES = {"riverside_rgb": riverside_rgb, "delta_4band": delta_4band}


def change_classes(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """uint8 change classes of two water truths on one grid (1 water, 0 dry, 255 nodata):
    1 flood (water after only), 2 permanent water, 3 receded (water before only), 0 dry,
    255 nodata in either."""
    a, b = after == 1, before == 1
    out = np.zeros(after.shape, np.uint8)
    out[a & ~b] = 1
    out[a & b] = 2
    out[~a & b] = 3
    out[(after == 255) | (before == 255)] = 255
    return out


def write_change_truth(after: SampleFiles, before: SampleFiles, path: str | Path) -> Path:
    """Write the class truth of a before/after pair (same grid) to ``path``; return it."""
    import rasterio

    with rasterio.open(after.truth) as a, rasterio.open(before.truth) as b:
        classes = change_classes(a.read(1), b.read(1))
    path = Path(path)
    write_geotiff(path, classes[None], after.crs, after.transform, nodata=255)
    return path


def before_after(
    make, outdir: str | Path, *args, **kwargs
) -> tuple[SampleFiles, SampleFiles, Path]:
    """Write a scene made by ``make`` (a recipe taking ``stage=``), its before scene and
    the class truth ``<stem>_change_truth.tif``; return (after, before, class truth)."""
    after = make(outdir, *args, stage="after", **kwargs)
    before = make(outdir, *args, stage="before", **kwargs)
    truth = write_change_truth(after, before, Path(outdir) / f"{after.image.stem}_change_truth.tif")
    return after, before, truth


def make_samples(outdir: str | Path) -> list[Path]:
    """Write every sample scene and its before scene into ``outdir``; return the files."""
    outdir = Path(outdir)
    written: list[Path] = []
    for make in SAMPLES.values():
        after, before, truth = before_after(make, outdir)
        for files in (after, before):
            written += [p for p in (files.image, files.truth, files.prompts_utm,
                                    files.prompts_4326) if p is not None]
        written.append(truth)
    return written
