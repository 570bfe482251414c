"""The per-tile work of ``segment``: read, encode and decode a chunk of tiles.

This is the part of a run that can go to a Dask worker (or run in-process, the same code): a
:class:`ChunkJob` carries tile windows and seeds (prompts in tile pixels), never pixels or
weights, and :func:`run_chunk` returns, per tile, each seed's water probability and, for a
seed that may grow into neighbour tiles, the water connected to its points. The client
(:class:`geofloodsam.tiles.engine.TileEngine`) keeps the wave logic, the tile store and
the writers.

Embeddings of tiles a later wave may come back to are kept, float16, in an
:class:`EmbeddingKeeper`. In-process the keeper spills to disk and never forgets; a worker's
keeper is a bounded memory cache, and a worker that does not have a tile's embedding (another
worker encoded it, or it was forgotten) encodes the tile again and rounds the result exactly
as the keeper does: the decoder sees the same numbers either way.

:class:`LocalExecutor` runs the work in this process; it has the same ``map`` as
:class:`geofloodsam.segmentation.distributed.DaskExecutor`, which sends it to a cluster.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window
from scipy import ndimage

from geofloodsam.tiles.growth import (
    MAX_FALLBACK_SHARE,
    Appearance,
    choose_box_candidate,
    choose_point_candidate,
    dilated,
    evidence_water,
    of_its_colour,
    promptless_body,
    promptless_logits,
)
from geofloodsam.tiles.store import PROB_EPS

if TYPE_CHECKING:  # torch is imported only where a model runs (not for --method index)
    from geofloodsam.model.sam import Embedding

#: objects decoded per decoder call
DECODE_CHUNK = 16
#: point objects decoded per call: fewer, so that the clicks that land in water the call maps
#: are skipped (the decoder's cost is per prompt: small calls cost little more)
POINT_CHUNK = 4
#: embeddings kept in memory (float16) before spilling to disk (in-process)
EMBEDDING_MEMORY_BYTES = 64 * 1024**2
#: embeddings a Dask worker keeps (float16) before forgetting the least recently used
WORKER_EMBEDDING_BYTES = 256 * 1024**2
#: open rasters kept per thread (in-process or on a worker)
SCENE_CACHE = 4


# --------------------------------------------------------------------------- task data
@dataclass
class Seed:
    """Prompts for one object in one tile, in tile-local pixels."""

    obj: int  # internal object index, 1..N
    points: np.ndarray | None = None  # (K, 2)
    labels: np.ndarray | None = None  # (K,)
    box: np.ndarray | None = None  # (4,)
    propagate: bool = False  # a point object that may grow into neighbouring tiles
    carried: bool = False  # seeded from a neighbour's mask, not from the user's prompts
    #: the object's colours, carried from the tile it was clicked in (None: taken here)
    appearance: Appearance | None = None
    multimask: bool = False  # a user's box: three candidates and a choice (points always)


@dataclass
class TileTask:
    """One tile to decode: its window, its seeds, and whether it was encoded before."""

    index: int  # the tile's index in the scene's grid
    key: Hashable  # the embedding's key: unique to the run, the scene and the tile
    window: Window
    seeds: list[Seed]
    revisit: bool = False  # encoded in an earlier wave: decode on the kept embedding


@dataclass
class ChunkJob:
    """Tiles encoded together (one encoder batch) and the settings of their decoding."""

    tasks: list[TileTask]
    threshold: float = 0.5
    skip_nodata: bool = False  # tiles without a valid pixel are neither encoded nor decoded
    keep: bool = True  # keep the new embeddings: a later wave may come back to these tiles


@dataclass
class Crop:
    """A part of a tile: ``data`` at tile-local rows ``r0:r0+h``, columns ``c0:c0+w``.

    Outside it the value is 0 (False). An object's probability in a tile is handed over as
    the crop of its pixels above :data:`~geofloodsam.tiles.store.PROB_EPS`, so that a tile of
    many small objects costs their pixels, not a full tile per object.
    """

    r0: int
    c0: int
    data: np.ndarray  # (h, w)

    @property
    def r1(self) -> int:
        return self.r0 + self.data.shape[0]

    @property
    def c1(self) -> int:
        return self.c0 + self.data.shape[1]

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The crop pasted into zeros of ``shape`` (the tile)."""
        out = np.zeros(shape, self.data.dtype)
        out[self.r0 : self.r1, self.c0 : self.c1] = self.data
        return out


EMPTY = np.zeros((0, 0), np.float16)


@dataclass
class TileResult:
    """One decoded tile: ``probs`` None when it was not decoded (no valid pixel, featureless).

    ``probs[k]`` is seed k's water probability (float16, as the store keeps it) cropped to
    where it exceeds :data:`~geofloodsam.tiles.store.PROB_EPS` (an empty crop: nowhere);
    ``connected[k]`` the water connected to a growing seed's points, cropped the same way.
    """

    probs: list[Crop] | None
    connected: dict[int, Crop]  # seed position -> water connected to its points
    shape: tuple[int, int] = (0, 0)  # the tile's (h, w)
    #: "new", "kept" (embedding reused), "again" (encoded again), "skipped" (no valid
    #: pixel), "featureless" (one colour after the stretch: nothing SAM could tell apart),
    #: "index" (mapped by the scene's water prior alone, not encoded)
    encoding: str = "new"
    #: seed position -> the object's appearance taken here (user point seeds)
    appearances: dict[int, Appearance] = field(default_factory=dict)
    #: positions of user point seeds whose click SAM and the water index both call dry
    dry: list[int] = field(default_factory=list)

    def dense(self) -> np.ndarray:
        """(S, h, w) float32 probabilities of every seed (for tests and small tiles)."""
        return np.stack([c.full(self.shape).astype(np.float32) for c in self.probs])


@dataclass
class ChunkResult:
    """The tiles of a :class:`ChunkJob`, in order, and the seconds spent on each step."""

    tiles: list[TileResult] = field(default_factory=list)
    read_s: float = 0.0
    encoder_s: float = 0.0
    decode_s: float = 0.0
    propagate_s: float = 0.0
    prompt_decodes: int = 0
    covered_seeds: int = 0  # point seeds inside water already decoded in their tile: skipped
    #: counts a work function adds up for the run record (e.g. the tiles of a fused run
    #: where SAM was used or the prior kept), summed over the scene by the engine
    counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- embeddings
class EmbeddingKeeper:
    """Embeddings of tiles a later wave may revisit, float16, keyed by anything hashable.

    With a ``directory``, embeddings beyond ``max_bytes`` in memory are spilled there and
    nothing is lost. Without one (a Dask worker's cache), the least recently used are
    forgotten beyond ``max_bytes``: :meth:`get` then returns ``None`` and the caller encodes
    the tile again (see :meth:`rounded`). Safe to use from several threads.
    """

    def __init__(self, directory: Path | None, max_bytes: int = EMBEDDING_MEMORY_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._memory: OrderedDict[Hashable, tuple] = OrderedDict()
        self._disk: dict[Hashable, Path] = {}
        self._bytes = 0
        self._files = 0
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._memory or key in self._disk

    @staticmethod
    def _pack(emb: Embedding) -> tuple:
        import torch

        feats = emb.features.detach().to("cpu", torch.float16)
        return feats, tuple(emb.original_size), tuple(emb.input_size)

    @staticmethod
    def _unpack(entry: tuple) -> Embedding:
        from geofloodsam.model.sam import Embedding

        feats, orig, inp = entry
        return Embedding(feats.float(), orig, inp)

    @classmethod
    def rounded(cls, emb: Embedding) -> Embedding:
        """``emb`` as :meth:`get` would return it once kept (float16, on the CPU)."""
        return cls._unpack(cls._pack(emb))

    def put(self, key: Hashable, emb: Embedding) -> None:
        """Keep a copy of ``emb`` under ``key``."""
        entry = self._pack(emb)
        size = entry[0].numel() * entry[0].element_size()
        with self._lock:
            if key in self:
                return
            if self.directory is None:
                while self._memory and self._bytes + size > self.max_bytes:
                    _, old = self._memory.popitem(last=False)
                    self._bytes -= old[0].numel() * old[0].element_size()
            if self._bytes + size <= self.max_bytes:
                self._memory[key] = entry
                self._bytes += size
            elif self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"emb_{self._files}.pt"
                self._files += 1
                import torch

                torch.save(entry, path)
                self._disk[key] = path

    def get(self, key: Hashable) -> Embedding | None:
        """The kept embedding of ``key`` (float32), or ``None``."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._unpack(self._memory[key])
            path = self._disk.get(key)
        if path is None:
            return None
        import torch

        return self._unpack(torch.load(path, weights_only=True))

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Drop the embeddings of ``keys`` (a finished scene's tiles)."""
        with self._lock:
            for key in keys:
                entry = self._memory.pop(key, None)
                if entry is not None:
                    self._bytes -= entry[0].numel() * entry[0].element_size()
                path = self._disk.pop(key, None)
                if path is not None:
                    path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the work
def run_chunk(
    model, scene, stretch, job: ChunkJob, keeper: EmbeddingKeeper, promptless: bool = True
) -> ChunkResult:
    """Read, encode and decode the tiles of ``job`` on ``scene`` (an open Scene).

    Tiles seen before reuse their kept embedding (or are encoded again, rounded as if kept);
    the others are read through ``stretch`` and encoded in one batch, skipped when
    ``job.skip_nodata`` and they hold no valid pixel. With ``promptless``, a tile with point
    seeds is also decoded with the whole-tile box, the evidence of
    :func:`~geofloodsam.tiles.growth.promptless_body` (counted as ``promptless_decodes``).
    """
    out = ChunkResult()
    embeddings = _embeddings(model, scene, stretch, job, keeper, out)
    for task, (emb, how, rgb) in zip(job.tasks, embeddings, strict=True):
        if emb is None:
            out.tiles.append(TileResult(None, {}, (0, 0), how))
            continue
        looks: dict[int, Appearance] = {}
        evidence = _promptless(model, emb, task.seeds, out) if promptless else None
        probs, connected = decode_seeds(model, emb, task.seeds, out, job.threshold, rgb, looks,
                                        evidence)
        out.tiles.append(TileResult(probs, connected, tuple(emb.original_size), how, looks))
    return out


def _embeddings(model, scene, stretch, job: ChunkJob, keeper: EmbeddingKeeper, out: ChunkResult):
    """(embedding or None, how, RGB) per task: kept ones reused, the others encoded.

    Every tile is read (a kept embedding's too): point seeds choose among SAM's candidates
    by the colours of the tile (:mod:`geofloodsam.tiles.growth`).
    """
    found: list = [None] * len(job.tasks)
    how = ["new"] * len(job.tasks)
    pixels: list = [None] * len(job.tasks)
    for k, task in enumerate(job.tasks):
        if task.revisit:
            found[k] = keeper.get(task.key)
            how[k] = "kept" if found[k] is not None else "again"
    new, again = [], []
    t0 = time.perf_counter()
    for k, task in enumerate(job.tasks):
        needs_colour = any(s.box is None for s in task.seeds)
        if found[k] is not None:
            if needs_colour:
                pixels[k] = scene.read_rgb(task.window, stretch)[0]
            continue
        rgb, valid = scene.read_rgb(task.window, stretch)
        pixels[k] = rgb if needs_colour else None
        if job.skip_nodata and not task.revisit and not valid.any():
            how[k] = "skipped"
            continue
        if featureless(rgb, valid):  # SAM calls a blank image all water: map it dry
            how[k] = "featureless"
            continue
        (again if task.revisit else new).append((k, rgb))
    out.read_s += time.perf_counter() - t0
    for group in (new, again):  # new tiles in one batch, as in a run that never forgets
        if not group:
            continue
        t0 = time.perf_counter()
        embs = model.encode_batch([rgb for _, rgb in group])
        device = getattr(model, "device", None)
        if getattr(device, "type", None) == "cuda":
            import torch

            torch.cuda.synchronize()
        out.encoder_s += time.perf_counter() - t0
        for (k, _), emb in zip(group, embs, strict=True):
            if group is again:
                keeper.put(job.tasks[k].key, emb)
                emb = EmbeddingKeeper.rounded(emb)
            elif job.keep:
                keeper.put(job.tasks[k].key, emb)
            found[k] = emb
    return list(zip(found, how, pixels, strict=True))


def _promptless(model, emb: Embedding, seeds: list[Seed], out: ChunkResult):
    """The tile's promptless logits (the whole-tile box) when it has point seeds, else None."""
    if not any(s.box is None for s in seeds):
        return None
    from geofloodsam.vector.prompts import whole_image_box

    t0 = time.perf_counter()
    h, w = emb.original_size
    pred = model.decode(emb, boxes=whole_image_box(w, h)[None], multimask=False)
    out.counts["promptless_decodes"] = out.counts.get("promptless_decodes", 0) + 1
    out.decode_s += time.perf_counter() - t0
    return np.asarray(pred.best_logits()[0], np.float32)


def featureless(rgb: np.ndarray, valid: np.ndarray) -> bool:
    """Whether the valid pixels of a tile are all one colour (nothing to segment).

    A blank tile (all zeros, a constant band after the stretch) is mapped by SAM as one
    object covering everything; such tiles are left dry and counted instead.
    """
    pixels = rgb.reshape(-1, rgb.shape[-1])
    if not valid.all():
        pixels = pixels[valid.reshape(-1)]
    if len(pixels) == 0:
        return False
    return bool((pixels.min(axis=0) == pixels.max(axis=0)).all())


def decode_seeds(
    model,
    emb: Embedding,
    seeds: list[Seed],
    out: ChunkResult,
    threshold: float = 0.5,
    rgb: np.ndarray | None = None,
    appearances: dict[int, Appearance] | None = None,
    evidence: np.ndarray | None = None,
) -> tuple[list[Crop], dict[int, Crop]]:
    """Each seed's water probability on one tile's embedding, cropped; growing seeds' water.

    Seeds are decoded :data:`DECODE_CHUNK` (boxes) or :data:`POINT_CHUNK` (points) at a time
    (one decoder call per chunk of the same prompt kind), and each chunk's full-tile logits
    are cropped (to where the probability exceeds :data:`~geofloodsam.tiles.store.PROB_EPS`,
    or the threshold if lower) before the next chunk, so memory is bounded by the chunk, not
    the number of objects. Point seeds and a user's boxes get SAM's three candidates and keep
    the one the evidence backs (:mod:`geofloodsam.tiles.growth`): with ``rgb`` (the tile as
    encoded), the candidate of the object's colours; without, the highest predicted IoU.
    A growing seed's connected water is the water of its chosen mask and of its colours
    connected to its points; ``appearances`` receives the appearance each user point seed
    took here. With ``evidence`` (the tile's promptless logits), a point seed whose clicks
    fall in its water keeps that water body (:func:`~geofloodsam.tiles.growth.promptless_body`)
    instead of a candidate, and grows along it. Returns ``(crops, connected)``.

    A point seed without negative points whose points all lie in water an earlier chunk of
    this tile already mapped is not decoded (an empty crop; counted in ``covered_seeds``):
    a thousand clicks on one lake cost one decode, not a thousand, so the cost grows with the
    number of distinct water bodies rather than the number of objects. Seeds are taken in
    their given order, so the outcome does not depend on where the work ran.
    """
    probs: list[Crop] = [Crop(0, 0, EMPTY)] * len(seeds)
    connected: dict[int, Crop] = {}
    groups: dict[tuple, list[int]] = {}
    for k, seed in enumerate(seeds):
        key = ("box", seed.multimask) if seed.box is not None else ("points",)
        groups.setdefault(key, []).append(k)
    floor = min(PROB_EPS, threshold)
    logit_floor = float(np.log(floor / (1.0 - floor)))
    h, w = emb.original_size
    mapped = np.zeros((h, w), bool)  # water of the seeds decoded so far in this tile
    for key, members in groups.items():
        queue = list(reversed(members))
        size = DECODE_CHUNK if key[0] == "box" else min(POINT_CHUNK, DECODE_CHUNK)
        while queue:
            part = []
            while queue and len(part) < size:
                k = queue.pop()
                if _covered(seeds[k], mapped):
                    out.covered_seeds += 1
                    if seeds[k].propagate:
                        connected[k] = Crop(0, 0, np.zeros((0, 0), bool))
                    continue
                part.append(k)
            if not part:
                break
            t0 = time.perf_counter()
            if key[0] == "box":
                boxes = np.stack([seeds[k].box for k in part])
                if key[1]:  # a user's box: its centre as a water point too (growth.py)
                    centres = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
                    pred = model.decode(emb, points=centres, point_labels=np.ones((len(part), 1)),
                                        boxes=boxes, multimask=True)
                else:
                    pred = model.decode(emb, boxes=boxes, multimask=False)
            else:
                pts, labs = _pad_points([seeds[k] for k in part])
                pred = model.decode(emb, points=pts, point_labels=labs, multimask=True)
            out.prompt_decodes += len(part)
            chosen = _chosen_logits(pred, [seeds[k] for k in part], rgb, threshold, evidence)
            out.decode_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            for k, (lg, look, by_evidence) in zip(part, chosen, strict=True):
                if look is not None and appearances is not None and not seeds[k].carried:
                    appearances[k] = look
                colours = None if look is None or rgb is None or by_evidence else (look, rgb)
                probs[k], water = _crop_seed(lg, seeds[k], logit_floor, floor, threshold,
                                             colours)
                if water is not None:
                    connected[k] = water
                c = probs[k]
                if c.data.size:
                    mapped[c.r0 : c.r1, c.c0 : c.c1] |= c.data > threshold
            out.propagate_s += time.perf_counter() - t0
    return probs, connected


def _chosen_logits(
    pred, seeds: list[Seed], rgb: np.ndarray | None, threshold: float,
    evidence: np.ndarray | None = None,
) -> list:
    """(logits (h, w), appearance or None, from the promptless evidence) per seed.

    The choice is made at the tile's resolution: a coarser grid would join water to fields
    across the hedges and tracks between them.
    """
    if pred.iou.shape[1] == 1:
        return [(lg, None, False) for lg in pred.best_logits()]
    cut = float(np.log(threshold / (1.0 - threshold)))
    logits = pred.logits
    masks = logits > cut
    picks, looks = [], []
    bodies: dict[int, np.ndarray] = {}
    wet = None if evidence is None else evidence > cut
    for i, seed in enumerate(seeds):
        if wet is not None and seed.box is None:
            positives = seed.points[seed.labels == 1]
            look = seed.appearance
            if look is None and rgb is not None:
                look = Appearance.at(rgb, positives)
            body = promptless_body(wet, positives, seed.points[seed.labels != 1])
            if body is not None and of_its_colour(body, look, rgb):
                bodies[i] = body
        if seed.box is not None:
            picks.append(choose_box_candidate(masks[i], pred.iou[i], seed.box))
            looks.append(None)
            continue
        positives = seed.points[seed.labels == 1]
        look = seed.appearance
        if look is None and rgb is not None:
            look = Appearance.at(rgb, positives)
        box = _bbox(masks[i].any(axis=0))  # the choice needs only where a candidate is
        if box is None:
            picks.append(-1 if seed.carried else int(np.argmax(pred.iou[i])))
            looks.append(look)
            continue
        r0, c0, r1, c1 = box
        here, iou = masks[i][:, r0:r1, c0:c1], pred.iou[i]
        if wet is not None and i not in bodies:  # beside the promptless water: no candidate
            fits = masks[i].mean(axis=(1, 2)) <= MAX_FALLBACK_SHARE  # that floods the tile
            if not fits.any():
                picks.append(-1)
                looks.append(look)
                continue
            here, iou = here & fits[:, None, None], np.where(fits, iou, -np.inf)
        consistent = None if look is None or rgb is None else look.consistent(rgb[r0:r1, c0:c1])
        picks.append(choose_point_candidate(here, iou, positives - [c0, r0], consistent,
                                            require=seed.carried))
        looks.append(look)
    unjustified = np.array(picks) < 0  # a carried seed no candidate of its colours backs
    chosen = logits[np.arange(len(seeds)), np.maximum(picks, 0)]
    chosen[unjustified] = -100.0  # maps nothing, grows nowhere
    for i, body in bodies.items():
        chosen[i] = promptless_logits(evidence, body, cut)
    return [(lg, look, i in bodies) for i, (lg, look) in enumerate(zip(chosen, looks,
                                                                         strict=True))]


def crop_probability(prob: np.ndarray, threshold: float = 0.5) -> Crop:
    """A whole-tile (h, w) probability as the crop :func:`decode_seeds` would hand over:
    the pixels above :data:`~geofloodsam.tiles.store.PROB_EPS` (or ``threshold`` if lower)."""
    box = _bbox(prob > min(PROB_EPS, threshold))
    if box is None:
        return Crop(0, 0, EMPTY)
    r0, c0, r1, c1 = box
    return Crop(r0, c0, prob[r0:r1, c0:c1].astype(np.float16))


def _covered(seed: Seed, mapped: np.ndarray) -> bool:
    """Whether a point seed with water points only lies wholly in already mapped water."""
    if seed.box is not None or seed.points is None or len(seed.points) == 0 or seed.carried:
        return False  # a carried seed is never dropped for another object's water
    if (seed.labels != 1).any():
        return False  # negatives say something the mapped water may not respect
    h, w = mapped.shape
    cols = np.floor(seed.points[:, 0]).astype(int)
    rows = np.floor(seed.points[:, 1]).astype(int)
    if ((cols < 0) | (cols >= w) | (rows < 0) | (rows >= h)).any():
        return False
    return bool(mapped[rows, cols].all())


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, c0, r1, c1) of the True pixels of ``mask``, None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _crop_seed(
    logits: np.ndarray, seed: Seed, logit_floor: float, floor: float, threshold: float,
    colours: tuple[Appearance, np.ndarray] | None = None,
) -> tuple[Crop, Crop | None]:
    """One seed's (h, w) logits -> its probability crop and, if it grows, its connected water.

    The crop holds every pixel whose probability exceeds ``floor``; a carried seed's
    probability is cut to its connected water (dilated by
    :data:`~geofloodsam.tiles.growth.CARRIED_CUT_PIXELS`) and cropped again. The connected
    water handed back for growth is the part of the object's colours (``consistent``, the
    tile's pixels of its colour; None: all of it).
    """
    nothing = Crop(0, 0, EMPTY), (Crop(0, 0, np.zeros((0, 0), bool)) if seed.propagate else None)
    box = _bbox(logits > logit_floor - 0.01)  # a margin for rounding: then exact, on the crop
    if box is None:
        return nothing
    r0, c0, r1, c1 = box
    prob = _sigmoid(logits[r0:r1, c0:c1])
    inner = _bbox(prob > floor)  # what a whole-tile sigmoid would have kept, exactly
    if inner is None:
        return nothing
    a0, b0, a1, b1 = inner
    prob = prob[a0:a1, b0:b1]
    r0, c0 = r0 + a0, c0 + b0
    if not seed.propagate:
        return Crop(r0, c0, prob.astype(np.float16)), None
    local = seed.points[seed.labels == 1] - np.array([c0, r0], dtype=np.float64)
    water = connected_water(prob > threshold, local, outside=True)
    if colours is not None:  # growth follows the water of the object's colours only
        look, rgb = colours
        here = look.consistent(rgb[r0 : r0 + water.shape[0], c0 : c0 + water.shape[1]])
        water = connected_water(evidence_water(water, here), local, outside=True)
    if seed.carried:  # where it was carried, the object is its connected water and edges
        prob[~dilated(connected_water(prob > threshold, local, outside=True))] = 0.0
        inner = _bbox(prob > floor)
        if inner is None:
            return Crop(0, 0, EMPTY), Crop(0, 0, np.zeros((0, 0), bool))
        a0, b0, a1, b1 = inner
        prob, water = prob[a0:a1, b0:b1], water[a0:a1, b0:b1]
        r0, c0 = r0 + a0, c0 + b0
    return Crop(r0, c0, prob.astype(np.float16)), Crop(r0, c0, water)


def connect_seeds(probs: np.ndarray, seeds: list[Seed], threshold: float) -> dict[int, np.ndarray]:
    """Water connected to each growing seed's points; cuts carried seeds' probabilities to it.

    A point object grows only from the water connected to its positive points; in a tile it
    was carried into (not clicked in), its probability is also cut to that connected water
    (dilated by 2 px), so an unrelated dark field decoded beside a seed neither shows nor
    spreads. ``probs`` ((S, h, w), whole tiles) is changed in place; :func:`decode_seeds` does
    the same on each seed's crop.
    """
    connected = {}
    for k, seed in enumerate(seeds):
        if seed.propagate:
            water = connected_water(probs[k] > threshold, seed.points[seed.labels == 1])
            connected[k] = water
            if seed.carried:
                probs[k][~dilated(water)] = 0.0
    return connected


def connected_water(water: np.ndarray, points: np.ndarray, outside: bool = False) -> np.ndarray:
    """The 8-connected components of ``water`` that hold one of the tile-local ``points``.

    Points beyond ``water``'s extent are clipped to its edge or, with ``outside`` (``water``
    is a crop whose surroundings are dry), hold nothing.
    """
    if len(points) == 0 or not water.any():
        return np.zeros_like(water, dtype=bool)
    h, w = water.shape
    cols = np.floor(points[:, 0]).astype(int)
    rows = np.floor(points[:, 1]).astype(int)
    if outside:
        inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        cols, rows = cols[inside], rows[inside]
        if cols.size == 0:
            return np.zeros_like(water, dtype=bool)
    labels, _ = ndimage.label(water, structure=np.ones((3, 3), bool))
    cols = np.clip(cols, 0, w - 1)
    rows = np.clip(rows, 0, h - 1)
    keep = np.zeros(labels.max() + 1, bool)
    keep[labels[rows, cols]] = True
    keep[0] = False
    return keep[labels]


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


# --------------------------------------------------------------------------- running it
# (what distributed.DaskExecutor also uses; kept here so that an in-process run needs no Dask)
@dataclass(frozen=True)
class SceneSpec:
    """A scene as a task sees it: path, band selection, the scene-level stretch, and the
    sensor found when the scene was planned (tasks do not detect it again)."""

    path: str
    bands: tuple[int, ...]
    stretch: dict = field(hash=False)  # Stretch.to_dict()
    sensor: dict | None = field(default=None, hash=False)  # SensorInfo.to_dict()
    composite: bool = False  # tiles read as the sensor's composite (bands = its bands)

    @classmethod
    def of(cls, scene, stretch) -> SceneSpec:
        """From an open :class:`~geofloodsam.raster.scene.Scene` and its ``Stretch``."""
        sensor = None if scene.sensor is None else scene.sensor.to_dict()
        return cls(str(Path(scene.path).resolve()), tuple(scene.bands), stretch.to_dict(),
                   sensor, bool(scene.composite))

    def open(self):
        """Open the scene as it was planned (an open :class:`~geofloodsam.raster.scene.Scene`)."""
        from geofloodsam.raster.scene import Scene
        from geofloodsam.raster.sensors import SensorInfo

        info = None if self.sensor is None else SensorInfo.from_dict(self.sensor)
        return Scene.open(self.path, None if self.composite else self.bands, sensor=info)


@dataclass
class TileOutcome:
    """A tile's result and where/how long it was computed."""

    result: Any
    seconds: float  # time spent in the work function
    worker: str  # worker address, or "local"
    pid: int


class OpenScenes:
    """Rasters kept open between tasks: a few per thread, the least recently used closed."""

    def __init__(self, size: int = SCENE_CACHE) -> None:
        self.size = size
        self._local = threading.local()

    def get(self, spec: SceneSpec):
        """(open Scene, Stretch) for ``spec``."""
        from geofloodsam.raster.scene import Stretch

        cache: OrderedDict = getattr(self._local, "scenes", None) or OrderedDict()
        self._local.scenes = cache
        key = (spec.path, spec.bands, spec.composite)
        scene = cache.pop(key, None) or spec.open()
        cache[key] = scene
        while len(cache) > self.size:
            cache.popitem(last=False)[1].close()
        return scene, Stretch.from_dict(spec.stretch)

    def close(self) -> None:
        """Close this thread's rasters."""
        cache = getattr(self._local, "scenes", None) or {}
        while cache:
            cache.popitem()[1].close()


class LocalExecutor:
    """The same ``map`` as :class:`DaskExecutor`, run in this process with no Dask at all.

    ``cache_dir``: where kept embeddings beyond the in-memory cap are spilled.
    """

    def __init__(self, model, cache_dir: Path | None = None) -> None:
        self.model = model
        self.keeper = EmbeddingKeeper(cache_dir)
        self.scenes = OpenScenes()

    def map(
        self, work: Callable, items: Iterable[tuple[SceneSpec, Any]], *, cache: bool = False
    ) -> Iterator[TileOutcome]:
        """``work(model, scene, stretch, payload[, keeper])`` for each item, one by one."""
        extra = (self.keeper,) if cache else ()
        for scene, payload in items:
            raster, stretch = self.scenes.get(scene)
            start = time.perf_counter()
            result = work(self.model, raster, stretch, payload, *extra)
            yield TileOutcome(result, time.perf_counter() - start, "local", os.getpid())

    def forget(self, keys: Iterable) -> None:
        """Drop the kept embeddings of ``keys`` (a finished scene's tiles)."""
        self.keeper.forget(keys)

    def close(self) -> None:
        """Close the rasters this executor opened."""
        self.scenes.close()
