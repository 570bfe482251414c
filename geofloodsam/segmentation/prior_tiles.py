"""The tile work of ``--method index`` and ``--method fused``: the water prior per tile.

A scene planned with a water prior (:mod:`geofloodsam.water.scene_prior`) sends
:class:`PriorJob` payloads instead of plain :class:`~geofloodsam.tiles.work.ChunkJob` ones;
:func:`run_tile_chunk` is the work function of every ``segment`` run and takes either:

* ``index``: each tile's probability is the prior's (the scene threshold, the tile's
  evidence), nothing is encoded;
* ``fused``: the tiles are read, encoded and decoded as usual (promptless: the whole-tile
  box), then each tile's SAM probability goes through
  :func:`geofloodsam.water.fusion.guarded_gate` with the tile's prior. A tile SAM could not
  segment (featureless after the composite) keeps the prior alone.

The counts ``fused_sam_tiles`` / ``fused_prior_tiles`` (whether SAM passed the guard) go
into ``run.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from geofloodsam.raster.sensors import SensorInfo
from geofloodsam.tiles.work import (
    ChunkJob,
    ChunkResult,
    RunEmbeddings,
    TileResult,
    crop_probability,
    run_chunk,
)
from geofloodsam.water.fusion import MIN_AGREEMENT, guarded_gate
from geofloodsam.water.scene_prior import PriorSpec, window_prior


@dataclass
class PriorJob:
    """A chunk of tiles with the scene prior to map or fuse them with."""

    job: ChunkJob
    method: str  # index | fused
    sensor: dict  # SensorInfo.to_dict()
    prior: dict  # PriorSpec.to_dict()


def run_tile_chunk(model, scene, stretch, payload, keeper: RunEmbeddings) -> ChunkResult:
    """The work of one chunk: :func:`~geofloodsam.tiles.work.run_chunk`, or with the prior."""
    if not isinstance(payload, PriorJob):
        return run_chunk(model, scene, stretch, payload, keeper)
    info = SensorInfo.from_dict(payload.sensor)
    spec = PriorSpec.from_dict(payload.prior)
    job = payload.job
    if payload.method == "index":
        return _index_chunk(scene, info, spec, job)
    if payload.method == "select":  # prompted: each click selects its water body
        from geofloodsam.segmentation.prompted_prior import select_chunk

        return select_chunk(model, scene, stretch, job, keeper, info, spec)
    out = run_chunk(model, scene, stretch, job, keeper)
    for k, (task, tile) in enumerate(zip(job.tasks, out.tiles, strict=True)):
        if tile.encoding == "skipped":
            continue
        t0 = time.perf_counter()
        prior = window_prior(scene.ds, info, spec, task.window)
        if tile.probs is None:  # featureless: SAM has nothing to say, the prior has
            out.tiles[k] = _prior_tile(prior, task, job.threshold)
            _count(out, "fused_prior_tiles")
        else:
            fused = []
            for crop in tile.probs:
                sam = crop.full(tile.shape).astype(np.float32)
                prob, agree = guarded_gate(sam, prior.probability(), prior.logits(), prior.valid)
                fused.append(crop_probability(prob, job.threshold))
                _count(out, "fused_sam_tiles" if agree >= MIN_AGREEMENT else "fused_prior_tiles")
            tile.probs = fused
        out.propagate_s += time.perf_counter() - t0
    return out


def _count(out: ChunkResult, name: str) -> None:
    out.counts[name] = out.counts.get(name, 0) + 1


def _prior_tile(prior, task, threshold: float) -> TileResult:
    prob = prior.probability()
    prob[~prior.valid] = 0.0
    crop = crop_probability(prob, threshold)
    return TileResult([crop] * len(task.seeds), {}, prob.shape, "index")


def _index_chunk(scene, info: SensorInfo, spec: PriorSpec, job: ChunkJob) -> ChunkResult:
    out = ChunkResult()
    for task in job.tasks:
        t0 = time.perf_counter()
        prior = window_prior(scene.ds, info, spec, task.window)
        out.read_s += time.perf_counter() - t0
        if not prior.valid.any():
            out.tiles.append(TileResult(None, {}, (0, 0), "skipped"))
            continue
        out.tiles.append(_prior_tile(prior, task, job.threshold))
    return out
