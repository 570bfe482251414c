"""The client side of ``segment``'s tile work: seeds, waves, the tile store.

* Seeding: each point object goes to the tile where its points are most central, each box to
  the tile that holds it (a box larger than a tile is split into per-tile boxes), or, without
  prompts, every tile gets a whole-tile box.
* :class:`TileEngine` runs in *waves*. :meth:`TileEngine.waves` yields each wave as
  :class:`~geofloodsam.tiles.tasks.ChunkJob` s (the tiles encoded together); whoever runs them
  (:func:`~geofloodsam.tiles.work.run_chunk`, in this process or on Dask workers) hands each
  outcome to :meth:`TileEngine.take` in the order of the jobs. ``take`` keeps each object's
  probability in the :class:`~geofloodsam.tiles.store.TileStore` and, where a point object's
  water (connected to its points) reaches an edge shared with a neighbour tile, seeds that
  neighbour with positive points from the water inside their overlap strip; the next wave is
  what was seeded, less seeds already inside water or over the caps (the rules of growth are
  :mod:`geofloodsam.tiles.growth`'s). Because outcomes are taken in job order whatever order
  they were computed in, the result does not depend on where the work ran.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from geofloodsam.geo.boxes import Box
from geofloodsam.tiles.grid import Tile, TileGrid
from geofloodsam.tiles.growth import Appearance, Reach, add_seed, grow_seeds, reaches_edge
from geofloodsam.tiles.store import TileStore
from geofloodsam.tiles.tasks import ChunkJob, Seed, TileResult, TileState, TileTask, tile_local
from geofloodsam.vector.prompts import NO_PROMPT, whole_image_box

#: a point object spreads over at most this many tiles
MAX_OBJECT_TILES = 256
#: the prompt type of the scene's water like its clicks (the water-alike object)
ALIKE = "alike"


@dataclass
class ObjectInfo:
    """What the engine knows of one object (internal index -> attributes)."""

    object_id: int
    prompt_type: str
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # full-raster px
    appearance: Appearance | None = None  # its colours, taken where it was clicked


# --------------------------------------------------------------------------- seeding
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
        seeds[index] = Seed(obj, tile_local(pts, tile), labs, propagate=True)
    return seeds


def box_seeds(grid: TileGrid, obj: int, box: Box) -> dict:
    """Seeds of a box object (full-raster ``box``): the tile that holds it whole, else one
    clipped box per tile.

    A box larger than a tile goes to every tile whose core (the part of the tile nearer its
    centre than any neighbour's) it touches, clipped to that tile.
    """
    box = Box(*(float(v) for v in box))
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    holders = [t for t in grid.tiles_overlapping(box) if t.box.contains(box)]
    if holders:
        tile = max(holders, key=lambda t: (t.margin(cx, cy), -t.index))
        return {tile.index: Seed(obj, box=_local_box(box, tile), multimask=True)}
    seeds = {}
    for tile in grid.tiles_overlapping(box):
        if grid.core(tile).intersection(box) is None:
            continue
        piece = box.intersection(tile.box)
        seeds[tile.index] = Seed(obj, box=_local_box(piece, tile), multimask=True)
    return seeds


def _local_box(box: Box, tile: Tile) -> Box:
    """A full-raster box in ``tile``'s pixels (float edges)."""
    return Box(*(float(v) for v in box.shifted(-tile.x0, -tile.y0)))


# --------------------------------------------------------------------------- engine
@dataclass
class EngineStats:
    """Counters and timings of the tile engine (tile steps summed over whoever ran them)."""

    tile_states: Counter = field(default_factory=Counter)  # TileState -> tiles taken
    tile_decodes: int = 0
    prompt_decodes: int = 0
    covered_seeds: int = 0  # point seeds inside water their tile already mapped: not decoded
    waves: int = 0
    counts: dict = field(default_factory=dict)  # ChunkResult.counts, summed
    featureless_tiles: set = field(default_factory=set)  # one colour: left dry, not decoded
    capped_objects: set = field(default_factory=set)
    dry_objects: set = field(default_factory=set)  # clicked on what SAM and the index call dry
    read_s: float = 0.0
    encoder_s: float = 0.0
    decode_s: float = 0.0
    store_s: float = 0.0
    propagate_s: float = 0.0
    task_seconds: list[float] = field(default_factory=list)  # each chunk task's work time
    task_workers: list[str] = field(default_factory=list)  # who ran each task

    def took(self, state: TileState, index: int) -> None:
        """Count a tile (``index``) handed back in ``state``."""
        self.tile_states[state] += 1
        if state is TileState.FEATURELESS:
            self.featureless_tiles.add(index)

    @property
    def tiles_encoded(self) -> int:
        return self.tile_states[TileState.NEW]

    @property
    def tiles_reencoded(self) -> int:
        """Encoded again by a worker that did not keep the embedding."""
        return self.tile_states[TileState.AGAIN]

    @property
    def skipped_nodata_tiles(self) -> int:
        return self.tile_states[TileState.SKIPPED]

    @property
    def tiles_indexed(self) -> int:
        """Mapped by the water prior alone."""
        return self.tile_states[TileState.INDEX]


class TileEngine:
    """Waves of seeded tiles: jobs out (:meth:`waves`), outcomes in (:meth:`take`).

    ``key`` prefixes the embedding keys of this engine's tiles (unique to the run and the
    scene). ``progress`` counts the grid's tiles, a total known before the first wave: a tile
    counts once, when first decoded, and the tiles no wave reached count when the waves end.
    Each tile is encoded at most once per run; a tile a later wave comes back to is decoded on
    its kept embedding.
    """

    def __init__(
        self,
        grid: TileGrid,
        store: TileStore,
        objects: dict[int, ObjectInfo],
        key: tuple = (),
        threshold: float = 0.5,
        progress: tqdm | None = None,
        skip_nodata_tiles: bool = False,
        max_object_tiles: int = MAX_OBJECT_TILES,
        keep_embeddings: bool = True,
        batch_size: int = 1,
    ) -> None:
        self.grid = grid
        self.store = store
        self.objects = objects
        self.key = tuple(key)
        self.threshold = threshold
        self.progress = progress
        self.skip_nodata_tiles = skip_nodata_tiles
        self.keep_embeddings = keep_embeddings
        self.batch_size = max(1, int(batch_size))
        self.stats = EngineStats()
        self._encoded: set[int] = set()  # tiles whose embedding was kept
        self._grown: dict[int, list[Seed]] = {}
        self.reach = Reach(max_object_tiles, capped=self.stats.capped_objects)
        self._settled: set[int] = set()  # tiles counted on the progress bar

    # waves
    def waves(self, seeds: dict[int, list[Seed]]) -> Iterator[list[ChunkJob]]:
        """Each wave's jobs, ``batch_size`` tiles each, starting from ``seeds`` (tile -> seeds).

        Every outcome of a wave must be given to :meth:`take` before the next wave is asked for.
        """
        pending = {i: s for i, s in seeds.items() if s}
        while pending:
            self.stats.waves += 1
            wave = sorted(pending.items())
            self._grown = {}
            yield [
                self._job(wave[start : start + self.batch_size])
                for start in range(0, len(wave), self.batch_size)
            ]
            pending = self.reach.admit(self._grown, self.grid, self.store, self.threshold,
                                       self.objects)
        if self.progress is not None:  # the tiles no wave reached are settled: not needed
            self.progress.update(len(self.grid) - len(self._settled))
            self._settled = set(range(len(self.grid)))

    def embedding_keys(self) -> list[Hashable]:
        """Keys of the embeddings kept for this engine's tiles."""
        return [(*self.key, index) for index in sorted(self._encoded)]

    def _job(self, chunk: list[tuple[int, list[Seed]]]) -> ChunkJob:
        tasks = [
            TileTask(index, (*self.key, index), self.grid.tiles[index].window, seeds,
                     revisit=index in self._encoded)
            for index, seeds in chunk
        ]
        return ChunkJob(tasks, self.threshold, self.skip_nodata_tiles, self.keep_embeddings)

    def take(self, job: ChunkJob, outcome) -> None:
        """Store a job's decoded tiles and seed the neighbours they grow into.

        ``outcome`` is a :class:`~geofloodsam.tiles.executor.TileOutcome` whose result is
        the job's :class:`~geofloodsam.tiles.tasks.ChunkResult`.
        """
        result, stats = outcome.result, self.stats
        stats.read_s += result.read_s
        stats.encoder_s += result.encoder_s
        stats.decode_s += result.decode_s
        stats.propagate_s += result.propagate_s
        stats.prompt_decodes += result.prompt_decodes
        stats.covered_seeds += result.covered_seeds
        for name, n in result.counts.items():
            stats.counts[name] = stats.counts.get(name, 0) + int(n)
        stats.task_seconds.append(float(outcome.seconds))
        stats.task_workers.append(str(outcome.worker))
        for task, tile in zip(job.tasks, result.tiles, strict=True):
            stats.took(tile.state, task.index)
            if tile.state is TileState.NEW and job.keep:
                self._encoded.add(task.index)
            if tile.probs is not None:
                self._decoded(self.grid.tiles[task.index], task.seeds, tile)
            if self.progress is not None and task.index not in self._settled:
                self._settled.add(task.index)
                self.progress.update(1)

    def _decoded(self, tile: Tile, seeds: list[Seed], result: TileResult) -> None:
        """Merge a tile's probabilities into the store; seed the neighbours objects reach."""
        self.stats.tile_decodes += 1
        t0 = time.perf_counter()
        for seed, crop in zip(seeds, result.probs, strict=True):
            if seed.carried and crop.data.size == 0:
                continue  # found nothing at its seed: no vote on the object's other water
            self.store.update_crop(tile, seed.obj, crop.r0, crop.c0, crop.data)
        self.stats.store_s += time.perf_counter() - t0
        self.stats.dry_objects.update(seeds[k].obj for k in result.dry)
        for k, look in sorted(result.appearances.items()):
            info = self.objects[seeds[k].obj]
            info.appearance = look.merged(info.appearance)
        t0 = time.perf_counter()
        sides = self.grid.neighbours(tile)
        for k, seed in enumerate(seeds):
            self.reach.reached(seed.obj, tile.index)
            water = result.connected.get(k)
            if water is None or not reaches_edge(water, tile, sides):
                continue  # water that touches no edge shared with a neighbour grows nowhere
            full = water.full((tile.height, tile.width))
            for n_index, grown in grow_seeds(self.grid, tile, seed.obj, full,
                                             self.objects[seed.obj]):
                add_seed(self._grown, n_index, grown)
        self.stats.propagate_s += time.perf_counter() - t0


# --------------------------------------------------------------------------- seeds
def build_seeds(
    grid: TileGrid, prompt_set, alike: Appearance | None = None
) -> tuple[dict[int, ObjectInfo], dict[int, list[Seed]]]:
    """Objects (internal index -> info) and the first wave's seeds (tile index -> seeds).

    Without prompts (``prompt_set`` None) every tile gets a whole-tile box of one "auto"
    object (id 0), so that polygons are not cut at tile edges. With ``alike`` (the colours
    of the scene's clicks) every tile also gets a water-alike seed of one more object
    (id 0, prompt type ``alike``; :func:`~geofloodsam.tiles.growth.alike_water`) that
    carries the negative points inside the tile.
    """
    seeds: dict[int, list[Seed]] = {}
    if prompt_set is None:
        objects = {1: ObjectInfo(0, NO_PROMPT)}
        for tile in grid:
            box = whole_image_box(tile.width, tile.height)
            seeds[tile.index] = [Seed(1, box=box)]
        return objects, seeds
    objects = {}
    for k, obj in enumerate(prompt_set.objects, start=1):
        if obj.kind == "box":
            objects[k] = ObjectInfo(int(obj.object_id), "box")
            parts = [box_seeds(grid, k, part) for part in obj.boxes]  # one per polygon part
        else:
            negatives = obj.points[obj.labels != 1]
            objects[k] = ObjectInfo(int(obj.object_id), "point", negatives)
            parts = [point_seeds(grid, k, obj.points, obj.labels)]
        for per_tile in parts:
            for index, seed in per_tile.items():
                seeds.setdefault(index, []).append(seed)
    if alike is not None:
        _add_alike(grid, objects, seeds, alike)
    return objects, seeds


def _add_alike(
    grid: TileGrid, objects: dict[int, ObjectInfo], seeds: dict[int, list[Seed]],
    alike: Appearance,
) -> None:
    """One water-alike object, a seed in every tile with the negative points inside it."""
    obj = max(objects, default=0) + 1
    negatives = np.concatenate(
        [o.negatives.reshape(-1, 2) for o in objects.values()] or [np.zeros((0, 2))]
    )
    objects[obj] = ObjectInfo(0, ALIKE, appearance=alike)
    for tile in grid:
        inside = np.array([q for q in negatives if tile.contains(q[0], q[1])]).reshape(-1, 2)
        seeds.setdefault(tile.index, []).append(
            Seed(obj, tile_local(inside, tile), np.zeros(len(inside), np.int64),
                 appearance=alike, alike=True)
        )

