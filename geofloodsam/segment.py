"""The ``segment`` pipeline: tiled, prompted flood segmentation of a large georeferenced raster.

Steps (the scene is never read whole, no full-scene array is ever allocated):

1. open the scene, compute one scene-level stretch, read the prompts into raster pixels;
2. seed tiles: each point object in the tile where its points are most central, each box in
   the tile that holds it (a box larger than a tile is split into per-tile boxes), or, without
   prompts, every tile that is not all nodata with a whole-tile box;
3. run in *waves*: encode the seeded tiles in batches (each tile at most once per run; its
   embedding is kept, in float16 and spilled to disk beyond a cap, in case a later wave comes
   back), decode all prompts of a tile on its embedding and keep each object's probability
   in an on-disk :class:`~geofloodsam.stitching.TileStore`; where a point object's water
   (connected to its points) reaches an edge shared with a neighbour tile, seed that
   neighbour with positive points from the water inside their overlap strip, and repeat
   until nothing grows;
4. blend row band by row band (each object over the tiles it was decoded in, then the
   per-pixel maximum over objects) into the mask (and probability) GeoTIFFs and polygons,
   convert to COGs, write the GeoPackage and ``run.json``. Everything is written under
   temporary names in OUTDIR and renamed only at the very end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import numpy as np
import rasterio
import torch
from scipy import ndimage
from tqdm import tqdm

from geofloodsam import __version__
from geofloodsam.errors import GeofloodsamError
from geofloodsam.model import Embedding, PromptableModel
from geofloodsam.stitching import Band, TileStore, write_blended
from geofloodsam.tiling import Tile, TileGrid
from geofloodsam.transforms import pixel_to_world
from geofloodsam.vectorize import BandPolygonizer, geodesic_areas, polygons_to_frame, write_gpkg

#: a point object spreads over at most this many tiles
MAX_OBJECT_TILES = 256
#: the same object decodes the same tile at most this many times (a lake that comes back)
MAX_VISITS = 3
#: seeds per object and neighbour tile (one per water component crossing the edge)
MAX_SEEDS = 4
#: water components smaller than this (pixels, inside the overlap strip) seed nothing
MIN_SEED_PIXELS = 8
#: objects decoded per decoder call
DECODE_CHUNK = 16
#: embeddings kept in memory (float16) before spilling to disk
EMBEDDING_MEMORY_BYTES = 64 * 1024**2
#: GDAL's block cache during a run (MB), unless GDAL_CACHEMAX is set: GDAL's default (5 % of
#: RAM) would otherwise fill with the scene's blocks and memory would grow with scene size
GDAL_CACHE_MB = 64


# --------------------------------------------------------------------------- data
@dataclass
class Seed:
    """Prompts for one object in one tile, in tile-local pixels."""

    obj: int  # internal object index, 1..N
    points: np.ndarray | None = None  # (K, 2)
    labels: np.ndarray | None = None  # (K,)
    box: np.ndarray | None = None  # (4,)
    propagate: bool = False  # a point object that may grow into neighbouring tiles
    carried: bool = False  # seeded from a neighbour's mask, not from the user's prompts


@dataclass
class ObjectInfo:
    """What the engine knows of one object (internal index -> attributes)."""

    object_id: int
    prompt_type: str
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # full-raster px


@dataclass
class SegmentResult:
    """Paths of the outputs and the run's figures (the content of run.json in ``record``)."""

    mask_path: Path
    prob_path: Path | None
    gpkg_path: Path
    run_path: Path
    record: dict[str, Any]

    @property
    def tiles_encoded(self) -> int:
        return int(self.record["tiles"]["encoded"])

    @property
    def water_area_m2(self) -> float:
        return float(self.record["water"]["area_m2"])

    def summary(self) -> str:
        """The one-line summary printed at the end of a run."""
        r = self.record
        return (
            f"{Path(r['inputs']['scene']).name}: {r['water']['area_m2'] / 1e6:.4g} km² of water "
            f"in {r['water']['polygons']} polygon(s) from {r['prompts']['objects']} object(s); "
            f"{r['tiles']['encoded']} tile(s) encoded, {r['timings']['total_s']:.1f} s -> "
            f"{self.mask_path.parent}"
        )


# --------------------------------------------------------------------------- embeddings
class EmbeddingKeeper:
    """Embeddings of tiles a later wave may revisit: float16 in memory, spilled beyond a cap."""

    def __init__(self, directory: Path, max_bytes: int = EMBEDDING_MEMORY_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._memory: dict[int, tuple[torch.Tensor, tuple, tuple]] = {}
        self._disk: set[int] = set()
        self._bytes = 0

    def __contains__(self, index: int) -> bool:
        return index in self._memory or index in self._disk

    def put(self, index: int, emb: Embedding) -> None:
        """Keep a copy of ``emb`` for tile ``index``."""
        feats = emb.features.detach().to("cpu", torch.float16)
        entry = (feats, tuple(emb.original_size), tuple(emb.input_size))
        size = feats.numel() * feats.element_size()
        if self._bytes + size <= self.max_bytes:
            self._memory[index] = entry
            self._bytes += size
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            torch.save(entry, self.directory / f"emb_{index}.pt")
            self._disk.add(index)

    def get(self, index: int) -> Embedding:
        """The kept embedding of tile ``index`` (float32)."""
        if index in self._memory:
            feats, orig, inp = self._memory[index]
        else:
            feats, orig, inp = torch.load(self.directory / f"emb_{index}.pt", weights_only=True)
        return Embedding(feats.float(), orig, inp)


# --------------------------------------------------------------------------- seeding
def _local(points: np.ndarray, tile: Tile) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) - np.array([tile.x0, tile.y0], dtype=np.float64)


def point_seeds(grid: TileGrid, obj: int, points: np.ndarray, labels: np.ndarray) -> dict:
    """Seeds of a point object: its water points in the tile where each is most central.

    Not-water points (label 0) go with the water points of every tile they fall in.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    pos, neg = points[labels == 1], points[labels != 1]
    by_tile: dict[int, list[np.ndarray]] = {}
    for p in pos:
        by_tile.setdefault(grid.best_tile(p[0], p[1]).index, []).append(p)
    seeds = {}
    for index, plist in by_tile.items():
        tile = grid.tiles[index]
        inside = [q for q in neg if tile.contains(q[0], q[1])]
        pts = np.array(plist + inside, dtype=np.float64)
        labs = np.array([1] * len(plist) + [0] * len(inside), dtype=np.int64)
        seeds[index] = Seed(obj, _local(pts, tile), labs, propagate=True)
    return seeds


def box_seeds(grid: TileGrid, obj: int, box: np.ndarray) -> dict:
    """Seeds of a box object: the tile that holds it whole, else one clipped box per tile.

    A box larger than a tile goes to every tile whose core (the part of the tile nearer its
    centre than any neighbour's) it touches, clipped to that tile.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    holders = [t for t in grid.tiles_overlapping(x0, y0, x1, y1) if _holds(t, x0, y0, x1, y1)]
    if holders:
        tile = max(holders, key=lambda t: (t.margin(cx, cy), -t.index))
        return {tile.index: Seed(obj, box=_local(np.array(box).reshape(2, 2), tile).ravel())}
    seeds = {}
    for tile in grid.tiles_overlapping(x0, y0, x1, y1):
        c0, r0, c1, r1 = grid.core(tile)
        if min(x1, c1) <= max(x0, c0) or min(y1, r1) <= max(y0, r0):
            continue
        piece = np.array(
            [max(x0, tile.x0), max(y0, tile.y0), min(x1, tile.x1), min(y1, tile.y1)], np.float64
        )
        seeds[tile.index] = Seed(obj, box=_local(piece.reshape(2, 2), tile).ravel())
    return seeds


def _holds(tile: Tile, x0: float, y0: float, x1: float, y1: float) -> bool:
    return tile.x0 <= x0 and tile.y0 <= y0 and x1 <= tile.x1 and y1 <= tile.y1


def _oriented(water: np.ndarray, side: str) -> np.ndarray:
    """A view of ``water`` turned so that the edge on ``side`` is the last column."""
    return {
        "right": water,
        "left": water[:, ::-1],
        "bottom": water.T,
        "top": water[::-1].T,
    }[side]


def _unorient(rows: np.ndarray, cols: np.ndarray, side: str, shape: tuple[int, int]):
    """Map (row, col) of :func:`_oriented`'s view back to (row, col) of the tile."""
    h, w = shape
    if side == "right":
        return rows, cols
    if side == "left":
        return rows, w - 1 - cols
    if side == "bottom":
        return cols, rows
    return h - 1 - cols, rows


def _overlap_width(tile: Tile, side: str, neighbour: Tile) -> int:
    return {
        "right": tile.x1 - neighbour.x0,
        "left": neighbour.x1 - tile.x0,
        "bottom": tile.y1 - neighbour.y0,
        "top": neighbour.y1 - tile.y0,
    }[side]


def edge_seeds(water: np.ndarray, tile: Tile, side: str, neighbour: Tile) -> np.ndarray:
    """Full-raster points seeding ``neighbour`` from an object's mask in ``tile``.

    ``water`` is the object's (h, w) mask in ``tile``. Nothing unless it reaches the tile's
    edge on ``side``. Each water component of the overlap strip shared with the neighbour
    that touches that edge (largest first, at most two) gives the deepest pixel of its half
    of the strip nearest the edge (where the object leaves the tile) and, when far from it,
    the deepest pixel of the whole component. Without overlap the edge column (row) is the
    strip and seeds move one pixel across into the neighbour.
    """
    view = _oriented(water, side)
    width = _overlap_width(tile, side, neighbour)
    across = width <= 0
    width = min(max(width, 1), view.shape[1])
    strip = view[:, view.shape[1] - width :]
    if not strip[:, -1].any():
        return np.zeros((0, 2))
    labels, _ = ndimage.label(strip, structure=np.ones((3, 3), bool))
    touching = np.unique(labels[:, -1])
    touching = touching[touching > 0]
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, touching)
    order = np.argsort(-sizes, kind="stable")
    ranked = [int(touching[i]) for i in order if sizes[i] >= MIN_SEED_PIXELS]
    far = np.zeros(strip.shape, bool)
    far[:, width - max(1, width // 2) :] = True
    rows, cols = [], []
    pad = 1 if width > 1 else ((1, 1), (0, 0))  # a 1-px strip: its run's middle
    for label in ranked[: MAX_SEEDS // 2]:
        region = labels == label
        dist = ndimage.distance_transform_edt(np.pad(region, pad))
        dist = dist[1:-1, 1:-1] if width > 1 else dist[1:-1]
        r1, c1 = np.unravel_index(int(np.argmax(np.where(far, dist, 0))), dist.shape)
        r2, c2 = np.unravel_index(int(np.argmax(dist)), dist.shape)
        rows.append(r1)
        cols.append(c1)
        if np.hypot(r2 - r1, c2 - c1) > 32:
            rows.append(r2)
            cols.append(c2)
    r, c = np.array(rows), np.array(cols) + view.shape[1] - width
    r, c = _unorient(r, c, side, water.shape)
    x = tile.x0 + c + 0.5
    y = tile.y0 + r + 0.5
    if across:
        step = {"right": (1, 0), "left": (-1, 0), "bottom": (0, 1), "top": (0, -1)}[side]
        x, y = x + step[0], y + step[1]
    pts = np.column_stack([x, y]).astype(np.float64).reshape(-1, 2)
    inside = np.array([neighbour.contains(px, py) for px, py in pts], dtype=bool)
    return pts[inside] if len(pts) else pts


def connected_water(water: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 8-connected components of ``water`` that hold one of the tile-local ``points``."""
    if len(points) == 0 or not water.any():
        return np.zeros_like(water, dtype=bool)
    labels, _ = ndimage.label(water, structure=np.ones((3, 3), bool))
    h, w = water.shape
    cols = np.clip(np.floor(points[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.floor(points[:, 1]).astype(int), 0, h - 1)
    hit = np.unique(labels[rows, cols])
    hit = hit[hit > 0]
    return np.isin(labels, hit) if len(hit) else np.zeros_like(water, dtype=bool)


# --------------------------------------------------------------------------- engine
@dataclass
class EngineStats:
    """Counters and timings of the tile engine."""

    tiles_encoded: int = 0
    tile_decodes: int = 0
    prompt_decodes: int = 0
    waves: int = 0
    skipped_nodata_tiles: int = 0
    capped_objects: set = field(default_factory=set)
    read_s: float = 0.0
    encoder_s: float = 0.0
    decode_s: float = 0.0
    store_s: float = 0.0
    propagate_s: float = 0.0


class TileEngine:
    """Encode seeded tiles once, decode their prompts, grow objects across tiles in waves."""

    def __init__(
        self,
        scene,
        stretch,
        grid: TileGrid,
        model: PromptableModel,
        store: TileStore,
        objects: dict[int, ObjectInfo],
        workdir: Path,
        threshold: float = 0.5,
        progress: tqdm | None = None,
        skip_nodata_tiles: bool = False,
        max_object_tiles: int = MAX_OBJECT_TILES,
        keep_embeddings: bool = True,
    ) -> None:
        self.scene = scene
        self.stretch = stretch
        self.grid = grid
        self.model = model
        self.store = store
        self.objects = objects
        self.threshold = threshold
        self.progress = progress
        self.skip_nodata_tiles = skip_nodata_tiles
        self.max_object_tiles = max_object_tiles
        self.keep_embeddings = keep_embeddings
        self.keeper = EmbeddingKeeper(workdir / "embeddings")
        self.stats = EngineStats()
        self.batch_size = max(1, int(getattr(model, "batch_size", 1)))
        self._visits: dict[tuple[int, int], int] = {}
        self._object_tiles: dict[int, set[int]] = {}
        device = getattr(model, "device", None)
        self._cuda = isinstance(device, torch.device) and device.type == "cuda"

    # waves
    def run(self, seeds: dict[int, list[Seed]]) -> EngineStats:
        """Process ``seeds`` (tile index -> seeds) and everything they grow into."""
        pending = {i: s for i, s in seeds.items() if s}
        while pending:
            self.stats.waves += 1
            wave = sorted(pending.items())
            pending = {}
            for start in range(0, len(wave), self.batch_size):
                chunk = wave[start : start + self.batch_size]
                embeddings = self._embeddings([i for i, _ in chunk])
                for index, tile_seeds in chunk:
                    emb = embeddings.get(index)
                    if emb is not None:
                        grown = self._decode_tile(self.grid.tiles[index], emb, tile_seeds)
                        for n_index, seed in grown:
                            _add_seed(pending, n_index, seed)
                    self._tick()
            pending = self._admit(pending)
            if self.progress is not None and pending:
                self.progress.total += len(pending)
                self.progress.refresh()
        return self.stats

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress.update(1)

    def _embeddings(self, indices: list[int]) -> dict[int, Embedding]:
        """Embeddings of the tiles ``indices``: kept ones reused, the others read and encoded."""
        out = {i: self.keeper.get(i) for i in indices if i in self.keeper}
        todo = [i for i in indices if i not in out]
        images, keep = [], []
        t0 = time.perf_counter()
        for i in todo:
            rgb, valid = self.scene.read_rgb(self.grid.tiles[i].window, self.stretch)
            if self.skip_nodata_tiles and not valid.any():
                self.stats.skipped_nodata_tiles += 1
                continue
            images.append(rgb)
            keep.append(i)
        self.stats.read_s += time.perf_counter() - t0
        if images:
            t0 = time.perf_counter()
            embs = self.model.encode_batch(images)
            if self._cuda:
                torch.cuda.synchronize()
            self.stats.encoder_s += time.perf_counter() - t0
            self.stats.tiles_encoded += len(images)
            for i, emb in zip(keep, embs, strict=True):
                out[i] = emb
                if self.keep_embeddings:
                    self.keeper.put(i, emb)
        return out

    def _decode_tile(self, tile: Tile, emb: Embedding, seeds: list[Seed]) -> list[tuple[int, Seed]]:
        """Decode every seed of a tile, store the merged result, return seeds for neighbours.

        A point object grows only from the water connected to its positive points; in a tile
        it was carried into (not clicked in), its mask is also cut to that connected water,
        so an unrelated dark field decoded beside a seed neither shows nor spreads.
        """
        self.stats.tile_decodes += 1
        t0 = time.perf_counter()
        probs = self._decode(emb, seeds)
        self.stats.decode_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        connected = {}
        for k, seed in enumerate(seeds):
            if seed.propagate:
                water = connected_water(probs[k] > self.threshold, seed.points[seed.labels == 1])
                connected[k] = water
                if seed.carried:
                    near = ndimage.binary_dilation(water, iterations=2)
                    probs[k][~near] = 0.0
        self.stats.propagate_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        for seed, prob in zip(seeds, probs, strict=True):
            self.store.update(tile, seed.obj, prob)
        self.stats.store_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        grown = []
        for k, seed in enumerate(seeds):
            self._object_tiles.setdefault(seed.obj, set()).add(tile.index)
            if k in connected:
                grown.extend(self._grow(tile, seed.obj, connected[k]))
        self.stats.propagate_s += time.perf_counter() - t0
        return grown

    def _decode(self, emb: Embedding, seeds: list[Seed]) -> np.ndarray:
        """(S, h, w) float32 water probability of each seed."""
        h, w = emb.original_size
        out = np.zeros((len(seeds), h, w), np.float32)
        groups: dict[tuple, list[int]] = {}
        for k, seed in enumerate(seeds):
            if seed.box is not None:
                key = ("box",)
            else:
                key = ("points", len(seed.points) == 1)
            groups.setdefault(key, []).append(k)
        for key, members in groups.items():
            for start in range(0, len(members), DECODE_CHUNK):
                part = members[start : start + DECODE_CHUNK]
                if key[0] == "box":
                    boxes = np.stack([seeds[k].box for k in part])
                    pred = self.model.decode(emb, boxes=boxes, multimask=False)
                else:
                    pts, labs = _pad_points([seeds[k] for k in part])
                    pred = self.model.decode(emb, points=pts, point_labels=labs, multimask=key[1])
                self.stats.prompt_decodes += len(part)
                logits = pred.best_logits()
                for k, lg in zip(part, logits, strict=True):
                    out[k] = _sigmoid(lg)
        return out

    def _grow(self, tile: Tile, obj: int, water: np.ndarray) -> list[tuple[int, Seed]]:
        """Seeds for the neighbours of ``tile`` that ``obj``'s mask reaches."""
        grown = []
        negatives = self.objects[obj].negatives
        for side, nb in self.grid.neighbours(tile).items():
            pts = edge_seeds(water, tile, side, nb)
            if len(pts) == 0:
                continue
            neg = np.array([q for q in negatives if nb.contains(q[0], q[1])]).reshape(-1, 2)
            all_pts = np.concatenate([pts, neg])
            labels = np.array([1] * len(pts) + [0] * len(neg), dtype=np.int64)
            seed = Seed(obj, _local(all_pts, nb), labels, propagate=True, carried=True)
            grown.append((nb.index, seed))
        return grown

    def _admit(self, pending: dict[int, list[Seed]]) -> dict[int, list[Seed]]:
        """Drop seeds already inside water, over the visit cap or the object's tile cap."""
        out: dict[int, list[Seed]] = {}
        for index in sorted(pending):
            tile = self.grid.tiles[index]
            for seed in pending[index]:
                pos = seed.labels == 1
                full = seed.points + np.array([tile.x0, tile.y0])
                if index in self.store:
                    dry = self.store.prob_at(tile, full[:, 0], full[:, 1]) <= self.threshold
                    pos = pos & dry
                if not pos.any():
                    continue
                keep = pos | (seed.labels != 1)
                key = (seed.obj, index)
                tiles = self._object_tiles.setdefault(seed.obj, set())
                if self._visits.get(key, 0) >= MAX_VISITS:
                    continue
                if index not in tiles and len(tiles) >= self.max_object_tiles:
                    self.stats.capped_objects.add(seed.obj)
                    continue
                self._visits[key] = self._visits.get(key, 0) + 1
                pts, labs = seed.points[keep], seed.labels[keep]
                out.setdefault(index, []).append(
                    Seed(seed.obj, pts, labs, propagate=True, carried=True)
                )
        return out


def _add_seed(pending: dict[int, list[Seed]], index: int, seed: Seed) -> None:
    """Add ``seed`` to a tile's pending seeds, merging points of the same object."""
    for other in pending.setdefault(index, []):
        if other.obj == seed.obj and other.box is None and seed.box is None:
            pos = np.concatenate([other.points[other.labels == 1], seed.points[seed.labels == 1]])
            neg = other.points[other.labels != 1]
            pos = pos[: 2 * MAX_SEEDS]
            other.points = np.concatenate([pos, neg])
            other.labels = np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
            return
    pending[index].append(seed)


def _pad_points(seeds: list[Seed]) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) points and (N, K) labels, padded with label -1."""
    k = max(len(s.points) for s in seeds)
    pts = np.zeros((len(seeds), k, 2), np.float64)
    labs = np.full((len(seeds), k), -1, np.int64)
    for i, s in enumerate(seeds):
        pts[i, : len(s.points)] = s.points
        labs[i, : len(s.points)] = s.labels
    return pts, labs


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.negative(x, dtype=np.float32)
    np.exp(np.clip(out, -80, 80, out=out), out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


# --------------------------------------------------------------------------- seeds
def build_seeds(grid: TileGrid, prompt_set) -> tuple[dict[int, ObjectInfo], dict[int, list[Seed]]]:
    """Objects (internal index -> info) and the first wave's seeds (tile index -> seeds).

    Without prompts (``prompt_set`` None) every tile gets a whole-tile box of one "auto"
    object (id 0), so that polygons are not cut at tile edges.
    """
    seeds: dict[int, list[Seed]] = {}
    if prompt_set is None:
        objects = {1: ObjectInfo(0, "auto")}
        for tile in grid:
            box = np.array([0.0, 0.0, tile.width, tile.height])
            seeds[tile.index] = [Seed(1, box=box)]
        return objects, seeds
    objects = {}
    for k, obj in enumerate(prompt_set.objects, start=1):
        if obj.kind == "box":
            objects[k] = ObjectInfo(int(obj.object_id), "box")
            per_tile = box_seeds(grid, k, obj.box)
        else:
            negatives = obj.points[obj.labels != 1]
            objects[k] = ObjectInfo(int(obj.object_id), "point", negatives)
            per_tile = point_seeds(grid, k, obj.points, obj.labels)
        for index, seed in per_tile.items():
            seeds.setdefault(index, []).append(seed)
    return objects, seeds


# --------------------------------------------------------------------------- outputs
def _row_pixel_areas(scene, y0: int, y1: int) -> np.ndarray:
    """Geodesic area (m²) of one pixel of each row ``y0..y1`` (at the centre column)."""
    import shapely

    col = scene.width // 2
    rows = np.arange(y0, y1, dtype=np.float64)
    cols = np.array([col, col + 1, col + 1, col], dtype=np.float64)
    xs, ys = pixel_to_world(scene.transform, cols[None, :], rows[:, None] + [0, 0, 1, 1])
    boxes = shapely.polygons(np.stack([xs, ys], axis=-1))
    return geodesic_areas(boxes, scene.crs)


class _BandSink:
    """Receives each written band: feeds the polygonizer and adds up the water area."""

    def __init__(self, scene) -> None:
        self.scene = scene
        self.polygonizer = BandPolygonizer(scene.width)
        self.pixels = 0
        self.area_m2 = 0.0

    def __call__(self, band: Band, water: np.ndarray) -> None:
        self.polygonizer.add_band(band.y0, water, band.ids)
        per_row = np.count_nonzero(water, axis=1)
        if per_row.any():
            self.pixels += int(per_row.sum())
            self.area_m2 += float(per_row @ _row_pixel_areas(self.scene, band.y0, band.y1))


def default_decoder(model_name: str) -> str:
    """``flood`` when the package ships a flood decoder for ``model_name``, else ``pretrained``."""
    from geofloodsam.model import SHIPPED_DECODER_DIR

    shipped = SHIPPED_DECODER_DIR / f"flood_decoder_{model_name}.pt"
    return "flood" if shipped.is_file() else "pretrained"


def _prepare_outdir(outdir: Path) -> list[Path]:
    """Create ``outdir`` if needed and check it is writable; return the folders created."""
    created = []
    parent = outdir.absolute()
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as exc:
        _remove_dirs(created)
        raise GeofloodsamError(
            f"cannot write to output folder {outdir} ({exc.strerror or type(exc).__name__}): "
            "choose another with -o/--outdir."
        ) from None
    return created


def _remove_dirs(created: list[Path]) -> None:
    """Remove the folders a failed run created (deepest first), if they are empty."""
    for path in created:
        try:
            path.rmdir()
        except OSError:
            pass


def _check_numbers(threshold: float, min_area: float, simplify: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise GeofloodsamError(f"--threshold must be between 0 and 1 (exclusive), got {threshold}.")
    if min_area < 0:
        raise GeofloodsamError(f"--min-area is in m² and cannot be negative, got {min_area}.")
    if simplify < 0:
        raise GeofloodsamError(f"--simplify is in metres and cannot be negative, got {simplify}.")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_info(model) -> dict[str, Any]:
    info = model.info() if hasattr(model, "info") else {}
    return dict(info) if info else {"model": type(model).__name__}


def output_paths(outdir: Path, stem: str) -> dict[str, Path]:
    """Final output paths of a scene called ``stem`` in ``outdir``."""
    return {
        "mask": outdir / f"{stem}_mask.tif",
        "prob": outdir / f"{stem}_prob.tif",
        "gpkg": outdir / f"{stem}_flood.gpkg",
        "run": outdir / f"{stem}_run.json",
    }


def segment(
    scene: str | Path,
    prompts: str | Path | None = None,
    outdir: str | Path | None = None,
    model: str = "vit_t",
    checkpoint: str | Path | None = None,
    decoder: str | Path | None = None,
    bands: str | Iterable[int] | None = None,
    stretch: str | tuple[float, float] = "auto",
    tile_size: int = 1024,
    overlap: int = 256,
    threshold: float = 0.5,
    min_area: float = 0.0,
    simplify: float = 0.0,
    save_prob: bool = False,
    device: str = "auto",
    quiet: bool = False,
    prompts_crs: str | None = None,
    sam_model: PromptableModel | None = None,
    max_object_tiles: int = MAX_OBJECT_TILES,
) -> SegmentResult:
    """Segment flood water in a georeferenced raster; write mask, polygons and run record.

    Args:
        scene: the GeoTIFF (any GDAL raster with a CRS).
        prompts: a vector file of water points and boxes (any CRS); ``None``: promptless,
            every tile is segmented with a whole-tile box.
        outdir: output folder (default: the scene's folder).
        model, checkpoint, decoder, device: the SAM to load (decoder default: ``flood`` when
            shipped, else ``pretrained``); ignored when ``sam_model`` is given.
        bands, stretch: band selection (1 or 3, 1-based) and ``auto`` or ``(MIN, MAX)``.
        tile_size, overlap: the tile grid (pixels).
        threshold: water where the blended probability is above it.
        min_area, simplify: polygon filter (m²) and simplification tolerance (metres).
        save_prob: also write the probability COG.
        quiet: no progress bar, no summary line (warnings still go to stderr).
        prompts_crs: the CRS of a prompts file that has none.
        sam_model: an already loaded :class:`~geofloodsam.model.PromptableModel` (tests).
        max_object_tiles: how many tiles one point object may spread over.
    """
    from geofloodsam.prompts import read_prompts
    from geofloodsam.raster_io import Scene, compute_stretch, parse_stretch

    t_start = time.perf_counter()
    _check_numbers(threshold, min_area, simplify)
    stretch_spec = parse_stretch(stretch)
    params = {
        "prompts": None if prompts is None else str(prompts),
        "prompts_crs": prompts_crs,
        "bands": None,
        "stretch": stretch if isinstance(stretch, str) else list(stretch_spec),
        "tile_size": tile_size,
        "overlap": overlap,
        "threshold": threshold,
        "min_area": min_area,
        "simplify": simplify,
        "save_prob": save_prob,
        "device": device,
        "max_object_tiles": max_object_tiles,
    }
    gdal_env = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": GDAL_CACHE_MB}
    with rasterio.Env(**gdal_env), Scene.open(scene, bands) as sc:
        params["bands"] = list(sc.bands)
        stem = Path(sc.path).stem
        out = Path(outdir) if outdir is not None else Path(sc.path).resolve().parent
        created = _prepare_outdir(out)
        try:
            grid = TileGrid(sc.width, sc.height, tile_size, overlap)
            st = compute_stretch(sc, stretch_spec)
            prompt_set = None
            if prompts is not None:
                prompt_set = read_prompts(
                    prompts, sc.crs, sc.transform, sc.width, sc.height, prompts_crs=prompts_crs
                )
                if prompt_set.n_outside:
                    click.echo(
                        f"Warning: {prompt_set.n_outside} of {prompt_set.n_features} prompt "
                        "feature(s) lie outside the raster and are ignored.",
                        err=True,
                    )
            objects, seeds = build_seeds(grid, prompt_set)
            t_load = time.perf_counter()
            if sam_model is None:
                from geofloodsam.model import load_model

                decoder = decoder if decoder is not None else default_decoder(model)
                sam_model = load_model(model, checkpoint=checkpoint, decoder=decoder, device=device)
            load_s = time.perf_counter() - t_load
            workdir = Path(tempfile.mkdtemp(dir=out, prefix=f".{stem}.geofloodsam-"))
            try:
                result = _run(
                    sc, st, grid, sam_model, objects, seeds, prompt_set, workdir, out, stem,
                    params, quiet, t_start, load_s,
                )
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        except BaseException:
            _remove_dirs(created)
            raise
    if not quiet:
        click.echo(result.summary(), err=True)
    return result


def _run(
    sc, st, grid, sam_model, objects, seeds, prompt_set, workdir, out, stem, params,
    quiet, t_start, load_s,
) -> SegmentResult:
    """Engine, outputs under temporary names in ``workdir``, then the renames."""
    info = _model_info(sam_model)
    n_objects = len(objects)
    store = TileStore(workdir / "tiles")
    promptless = prompt_set is None
    with tqdm(total=len(seeds), unit="tile", desc="segment", disable=quiet, leave=False) as bar:
        engine = TileEngine(
            sc, st, grid, sam_model, store, objects, workdir,
            threshold=params["threshold"], progress=bar, skip_nodata_tiles=promptless,
            max_object_tiles=params["max_object_tiles"],
            keep_embeddings=any(s.propagate for tile in seeds.values() for s in tile),
        )
        stats = engine.run(seeds)
    if promptless and stats.tiles_encoded == 0:
        raise GeofloodsamError(
            f"every tile of {sc.path} is nodata in bands {','.join(map(str, sc.bands))}: "
            "nothing to segment; check the file and --bands."
        )
    if stats.capped_objects and not quiet:
        ids = sorted(objects[k].object_id for k in stats.capped_objects)
        click.echo(
            f"Warning: object(s) {', '.join(map(str, ids[:10]))} reached the limit of "
            f"{params['max_object_tiles']} tiles and were cut there.",
            err=True,
        )
    t0 = time.perf_counter()
    sink = _BandSink(sc)
    cogs = write_blended(
        sc, grid, store, workdir, params["threshold"], params["save_prob"], on_band=sink
    )
    polygonizer = sink.polygonizer
    water = {"pixels": sink.pixels, "area_m2": sink.area_m2}
    stitch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_label = f"{info.get('model', '?')}:{info.get('decoder', 'pretrained')}"
    attributes = {
        k: {"object_id": o.object_id, "prompt_type": o.prompt_type} for k, o in objects.items()
    }
    frame = polygons_to_frame(
        polygonizer.polygons(), sc.transform, sc.crs, attributes, model_label,
        params["min_area"], params["simplify"],
    )
    gpkg_tmp = workdir / "flood.gpkg"
    write_gpkg(frame, gpkg_tmp)
    vectorize_s = time.perf_counter() - t0
    final = output_paths(out, stem)
    total_s = time.perf_counter() - t_start
    record = _record(
        sc, st, grid, info, prompt_set, params, stats, water, len(frame), final, cogs,
        {
            "total_s": total_s,
            "model_load_s": load_s,
            "encoder_s": stats.encoder_s,
            "other_s": total_s - load_s - stats.encoder_s,
            "read_s": stats.read_s,
            "decode_s": stats.decode_s,
            "tile_store_s": stats.store_s,
            "propagate_s": stats.propagate_s,
            "stitch_write_s": stitch_s,
            "vectorize_s": vectorize_s,
        },
        n_objects,
    )
    run_tmp = workdir / "run.json"
    run_tmp.write_text(json.dumps(record, indent=2) + "\n")
    moves = [(cogs["mask"], final["mask"]), (gpkg_tmp, final["gpkg"]), (run_tmp, final["run"])]
    if "prob" in cogs:
        moves.insert(1, (cogs["prob"], final["prob"]))
    moved: list[Path] = []
    try:
        for src, dst in moves:
            os.replace(src, dst)
            moved.append(dst)
    except BaseException:
        for dst in moved:
            dst.unlink(missing_ok=True)
        raise
    return SegmentResult(
        final["mask"], final["prob"] if "prob" in cogs else None, final["gpkg"], final["run"],
        record,
    )


def _record(
    sc, st, grid, info, prompt_set, params, stats, water, n_polygons, final, cogs, timings,
    n_objects,
) -> dict[str, Any]:
    scene_path = Path(sc.path)
    prompts = params["prompts"]
    return {
        "geofloodsam_version": __version__,
        "command": "segment",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            "scene": str(scene_path.resolve()),
            "scene_bytes": scene_path.stat().st_size,
            "prompts": None if prompts is None else str(Path(prompts).resolve()),
            "prompts_sha256": None if prompts is None else _sha256(Path(prompts)),
        },
        "scene": {
            "width": sc.width,
            "height": sc.height,
            "crs": sc.crs.to_string(),
            "transform": list(sc.transform)[:6],
            "dtype": str(sc.dtype),
            "bands": list(sc.bands),
            "nodata": sc.nodata,
        },
        "parameters": params,
        "model": info,
        "stretch": st.to_dict(),
        "prompts": {
            "mode": "promptless" if prompt_set is None else "prompted",
            "features": 0 if prompt_set is None else prompt_set.n_features,
            "outside": 0 if prompt_set is None else prompt_set.n_outside,
            "source_crs": None if prompt_set is None else prompt_set.source_crs,
            "objects": 0 if prompt_set is None else n_objects,
        },
        "tiles": {
            "grid": len(grid),
            "grid_shape": [grid.n_rows, grid.n_cols],
            "encoded": stats.tiles_encoded,
            "decoded": stats.tile_decodes,
            "prompt_decodes": stats.prompt_decodes,
            "waves": stats.waves,
            "skipped_nodata": stats.skipped_nodata_tiles,
            "capped_objects": len(stats.capped_objects),
        },
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
        "water": {"pixels": water["pixels"], "area_m2": water["area_m2"], "polygons": n_polygons},
        "outputs": {
            "mask": final["mask"].name,
            "prob": final["prob"].name if "prob" in cogs else None,
            "polygons": final["gpkg"].name,
            "run": final["run"].name,
        },
    }
