"""Prompts on a raster with a water index (s1, s2, naip): a click selects its water body.

A prompted run on a sensor with a water index sends ``select`` tile jobs
(:class:`~geofloodsam.segmentation.prior_tiles.PriorJob`). Each tile is decoded as usual
(SAM's candidates, the one the evidence at the clicks backs,
:mod:`geofloodsam.tiles.growth`), then each seed's mask is fused with the tile's water prior
by :func:`geofloodsam.water.fusion.guarded_gate`, the rule of promptless ``fused`` runs: the
index decides where it is confident, SAM the pixels it is unsure of (the edges), and a SAM
mask that misses the index's obvious water, or floods the tile, is not used. Then:

* a point object keeps the fused water connected to its positive points (its water body),
  joined across gaps of up to :data:`JOIN_GAP_PIXELS` (the index fragments a flood into
  pieces a few pixels apart), soft edges within :data:`EDGE_BAND_PIXELS` of it; a negative
  point inside that body cuts it back to SAM's mask; growth into neighbours follows that body;
* a box keeps the fused water inside it;
* a user's click whose fused water is dry (SAM and the index both say dry) maps nothing and
  is reported (``TileResult.dry``), so the run can warn naming the object.
"""

from __future__ import annotations

import numpy as np

from geofloodsam.geo.boxes import Box
from geofloodsam.raster.sensors import SensorInfo
from geofloodsam.tiles.growth import connected_water, dilated, joined_body
from geofloodsam.tiles.tasks import EMPTY, ChunkJob, ChunkResult, Crop, Seed, TileState
from geofloodsam.tiles.work import RunEmbeddings, crop_probability, run_chunk
from geofloodsam.water.fusion import guarded_gate
from geofloodsam.water.scene_prior import PriorSpec, window_prior

#: a selected water body keeps SAM's soft edge this far (px) around it
EDGE_BAND_PIXELS = 3
#: fused water this close (px) to a click's water body is part of it: fragments of one
#: flood split by the index are joined across gaps of up to twice this. Chosen by
#: leave-one-chip-out cross-validation (``benchmarks/prompt_gap_cv.py``, docs/prompting.md)
JOIN_GAP_PIXELS = 8


def select_chunk(
    model, scene, stretch, job: ChunkJob, keeper: RunEmbeddings, info: SensorInfo,
    spec: PriorSpec,
) -> ChunkResult:
    """Decode ``job``'s tiles, then each seed's water body of the fused evidence."""
    out = run_chunk(model, scene, stretch, job, keeper, promptless=False)
    for task, tile in zip(job.tasks, out.tiles, strict=True):
        if tile.state is TileState.SKIPPED:
            continue
        prior = window_prior(scene.ds, info, spec, task.window)
        shape = prior.score.shape
        if tile.probs is None:  # featureless: SAM has nothing to say, the index has
            tile.probs = [Crop(0, 0, EMPTY)] * len(task.seeds)
            tile.shape = shape
        p_prob, p_logits = prior.probability(), prior.logits()
        for k, seed in enumerate(task.seeds):
            sam = tile.probs[k].full(shape).astype(np.float32)
            fused, _ = guarded_gate(sam, p_prob, p_logits, prior.valid)
            fused[~prior.valid] = sam[~prior.valid]
            prob, body = select(fused, sam, seed, job.threshold)
            tile.probs[k] = crop_probability(prob, job.threshold)
            if seed.propagate:
                tile.connected[k] = _crop_of(body)
                if not body.any() and not seed.carried:
                    tile.dry.append(k)
    return out


def select(
    fused: np.ndarray, sam: np.ndarray, seed: Seed, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(probability, water body) of one seed from the tile's fused and SAM probabilities."""
    water = fused > threshold
    if seed.box is not None:
        inside = np.zeros_like(water)
        x0, y0, x1, y1 = np.round(seed.box).astype(int)
        inside[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
        return np.where(inside, fused, 0.0).astype(np.float32), water & inside
    positives = seed.points[seed.labels == 1]
    negatives = seed.points[seed.labels != 1]
    body = joined_body(water, positives, JOIN_GAP_PIXELS)
    if len(negatives) and connected_water(body, negatives, outside=True).any():
        body = connected_water(body & (sam > threshold), positives, outside=True)
    if not body.any():
        return np.zeros_like(fused), body
    near = dilated(body, EDGE_BAND_PIXELS)
    prob = np.where(body, fused, np.minimum(fused, threshold) * near)
    return prob.astype(np.float32), body


def _crop_of(water: np.ndarray) -> Crop:
    box = Box.around(water)
    if box is None:
        return Crop(0, 0, np.zeros((0, 0), bool))
    return Crop(box.y0, box.x0, water[box.slices])
