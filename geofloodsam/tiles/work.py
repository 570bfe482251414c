"""The per-tile work of ``segment``: read, encode and decode a chunk of tiles.

This is the part of a run that can go to a Dask worker (or run in-process, the same code): a
:class:`~geofloodsam.tiles.tasks.ChunkJob` carries tile windows and seeds (prompts in tile
pixels), never pixels or weights, and :func:`run_chunk` returns, per tile, each seed's water
probability and, for a seed that may grow into neighbour tiles, the water connected to its
points (:func:`~geofloodsam.tiles.growth.crop_seed`). The client
(:class:`geofloodsam.tiles.engine.TileEngine`) keeps the wave logic, the tile store and
the writers.

Embeddings of tiles a later wave may come back to are kept for the run, float16, in
:class:`RunEmbeddings`. In-process the keeper spills to disk and never forgets; a worker's
keeper is a bounded memory cache, and a worker that does not have a tile's embedding (another
worker encoded it, or it was forgotten) encodes the tile again and rounds the result exactly
as the keeper does: the decoder sees the same numbers either way.

Where the work runs (this process or a cluster) is :mod:`geofloodsam.tiles.executor`'s.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geofloodsam.geo.boxes import Box
from geofloodsam.model.logits import logit
from geofloodsam.tiles.growth import (
    MAX_FALLBACK_SHARE,
    PROMPTLESS_JOIN_PIXELS,
    Appearance,
    alike_water,
    backed_large_candidates,
    candidates_agree,
    choose_box_candidate,
    choose_point_candidate,
    covered,
    crop_seed,
    of_its_colour,
    promptless_body,
    promptless_logits,
)
from geofloodsam.tiles.store import PROB_EPS
from geofloodsam.tiles.tasks import (
    EMPTY,
    ChunkJob,
    ChunkResult,
    Crop,
    Seed,
    TileResult,
    TileState,
)

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


# --------------------------------------------------------------------------- embeddings
class RunEmbeddings:
    """Embeddings of tiles a later wave of this run may revisit, float16, keyed by anything
    hashable (the run's, scene's and tile's key): they live for one run, and a finished
    scene's are forgotten. Embeddings kept between runs are
    :class:`geofloodsam.model.embedding_cache.PersistentEmbeddingCache`.

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
    model, scene, stretch, job: ChunkJob, keeper: RunEmbeddings, promptless: bool = True
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


def _embeddings(model, scene, stretch, job: ChunkJob, keeper: RunEmbeddings, out: ChunkResult):
    """(embedding or None, how, RGB) per task: kept ones reused, the others encoded.

    Every tile is read (a kept embedding's too): point seeds choose among SAM's candidates
    by the colours of the tile (:mod:`geofloodsam.tiles.growth`).
    """
    found: list = [None] * len(job.tasks)
    how = [TileState.NEW] * len(job.tasks)
    pixels: list = [None] * len(job.tasks)
    for k, task in enumerate(job.tasks):
        if task.revisit:
            found[k] = keeper.get(task.key)
            how[k] = TileState.KEPT if found[k] is not None else TileState.AGAIN
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
            how[k] = TileState.SKIPPED
            continue
        if featureless(rgb, valid):  # SAM calls a blank image all water: map it dry
            how[k] = TileState.FEATURELESS
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
                emb = RunEmbeddings.rounded(emb)
            elif job.keep:
                keeper.put(job.tasks[k].key, emb)
            found[k] = emb
    return list(zip(found, how, pixels, strict=True))


def _promptless(model, emb: Embedding, seeds: list[Seed], out: ChunkResult):
    """The tile's promptless logits (the whole-tile box) when it has point (or water-alike)
    seeds, else None."""
    if not any(s.box is None for s in seeds):
        return None
    t0 = time.perf_counter()
    h, w = emb.original_size
    pred = model.decode(emb, boxes=np.array([Box(0.0, 0.0, float(w), float(h))]),
                        multimask=False)
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
    instead of a candidate, and grows along it. A water-alike seed is not decoded: its crop
    is the ``evidence`` water of the scene's clicked colours (:func:`_alike_crop`). Returns
    ``(crops, connected)``.

    A point seed without negative points whose points all lie in water an earlier chunk of
    this tile already mapped is not decoded (an empty crop; counted in ``covered_seeds``):
    a thousand clicks on one lake cost one decode, not a thousand, so the cost grows with the
    number of distinct water bodies rather than the number of objects. Seeds are taken in
    their given order, so the outcome does not depend on where the work ran.
    """
    probs: list[Crop] = [Crop(0, 0, EMPTY)] * len(seeds)
    connected: dict[int, Crop] = {}
    groups: dict[tuple, list[int]] = {}
    floor = min(PROB_EPS, threshold)
    logit_floor = logit(floor)
    for k, seed in enumerate(seeds):
        if seed.alike:  # no decode of its own: the promptless evidence, of the clicks' colours
            probs[k] = _alike_crop(seed, evidence, rgb, threshold, logit_floor, floor)
            continue
        key = ("box", seed.multimask) if seed.box is not None else ("points",)
        groups.setdefault(key, []).append(k)
    h, w = emb.original_size
    mapped = np.zeros((h, w), bool)  # water of the seeds decoded so far in this tile
    for key, members in groups.items():
        queue = list(reversed(members))
        size = DECODE_CHUNK if key[0] == "box" else min(POINT_CHUNK, DECODE_CHUNK)
        while queue:
            part = []
            while queue and len(part) < size:
                k = queue.pop()
                if covered(seeds[k], mapped):
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
                gap = PROMPTLESS_JOIN_PIXELS if by_evidence and not seeds[k].carried else 0
                probs[k], water = crop_seed(lg, seeds[k], logit_floor, floor, threshold,
                                             colours, gap)
                if water is not None:
                    connected[k] = water
                c = probs[k]
                if c.data.size:
                    mapped[c.r0 : c.r1, c.c0 : c.c1] |= c.data > threshold
            out.propagate_s += time.perf_counter() - t0
    return probs, connected


def _alike_crop(
    seed: Seed, evidence: np.ndarray | None, rgb: np.ndarray | None, threshold: float,
    logit_floor: float, floor: float,
) -> Crop:
    """A water-alike seed's probability crop: the tile's promptless water (``evidence``,
    logits) that looks like the scene's clicks (:func:`~geofloodsam.tiles.growth.alike_water`),
    with the promptless soft edge; empty without evidence, pixels or colours."""
    if evidence is None or rgb is None or seed.appearance is None:
        return Crop(0, 0, EMPTY)
    cut = logit(threshold)
    negatives = seed.points[seed.labels != 1] if seed.points is not None else np.zeros((0, 2))
    water = alike_water(evidence > cut, seed.appearance, rgb, negatives)
    if not water.any():
        return Crop(0, 0, EMPTY)
    logits = promptless_logits(evidence, water, cut)
    return crop_seed(logits, seed, logit_floor, floor, threshold)[0]


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
    cut = logit(threshold)
    logits = pred.logits
    masks = logits > cut
    picks, looks = [], []
    bodies: dict[int, np.ndarray] = {}
    wet = None if evidence is None else evidence > cut
    for i, seed in enumerate(seeds):
        if seed.box is not None:
            picks.append(choose_box_candidate(masks[i], pred.iou[i], seed.box))
            looks.append(None)
            continue
        positives = seed.points[seed.labels == 1]
        look = seed.appearance
        if look is None and rgb is not None:
            look = Appearance.at(rgb, positives)
        if wet is not None:
            colours = None if look is None or rgb is None else (look, rgb)
            body = promptless_body(wet, positives, seed.points[seed.labels != 1],
                                   0 if seed.carried else PROMPTLESS_JOIN_PIXELS, colours)
            if body is not None and (of_its_colour(body, look, rgb)
                                     or candidates_agree(masks[i], positives, body)):
                bodies[i] = body
        box = Box.around(masks[i].any(axis=0))  # the choice needs only where a candidate is
        if box is None:
            picks.append(-1 if seed.carried else int(np.argmax(pred.iou[i])))
            looks.append(look)
            continue
        here, iou = masks[i][:, box.rows, box.cols], pred.iou[i]
        consistent = None if look is None or rgb is None else look.consistent(rgb[box.slices])
        if wet is not None and i not in bodies:  # beside the promptless water: no candidate
            fits = masks[i].mean(axis=(1, 2)) <= MAX_FALLBACK_SHARE  # that floods the tile
            if not seed.carried:  # ... unless a user's click, its colour and promptless
                fits |= backed_large_candidates(  # water back it
                    here, positives - [box.x0, box.y0], consistent, wet[box.slices])
            if not fits.any():
                picks.append(-1)
                looks.append(look)
                continue
            here, iou = here & fits[:, None, None], np.where(fits, iou, -np.inf)
        picks.append(choose_point_candidate(here, iou, positives - [box.x0, box.y0],
                                            consistent, require=seed.carried))
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
    box = Box.around(prob > min(PROB_EPS, threshold))
    if box is None:
        return Crop(0, 0, EMPTY)
    return Crop(box.y0, box.x0, prob[box.slices].astype(np.float16))


def _pad_points(seeds: list[Seed]) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) points and (N, K) labels, padded with label -1."""
    k = max(len(s.points) for s in seeds)
    pts = np.zeros((len(seeds), k, 2), np.float64)
    labs = np.full((len(seeds), k), -1, np.int64)
    for i, s in enumerate(seeds):
        pts[i, : len(s.points)] = s.points
        labs[i, : len(s.points)] = s.labels
    return pts, labs
