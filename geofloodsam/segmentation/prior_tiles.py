"""The tile work functions of ``segment``, and the one the executor maps over every scene.

Each scene's plan names the work function of its tiles
(:attr:`geofloodsam.segmentation.plan.ScenePlan.work`) and sends it with each chunk as a
:class:`TileJob`; :func:`run_tile_chunk`, the function every ``segment`` run hands to the
executor, calls it. Without a water prior the work is
:func:`~geofloodsam.tiles.work.run_chunk`; a scene planned with a water prior
(:mod:`geofloodsam.water.scene_prior`) sends :class:`PriorJob` payloads to the work of
:data:`PRIOR_WORK`, by how its tiles use the prior:

* ``index`` (:func:`index_chunk`): each tile's probability is the prior's (the scene
  threshold, the tile's evidence), nothing is encoded;
* ``fused`` (:func:`fused_chunk`): the tiles are read, encoded and decoded as usual
  (promptless: the whole-tile box), then each tile's SAM probability goes through
  :func:`geofloodsam.water.fusion.guarded_gate` with the tile's prior. A tile SAM could not
  segment (featureless after the composite) keeps the prior alone;
* ``select`` (:func:`select_chunk`, prompted): each click selects its water body of the
  fused evidence (:mod:`geofloodsam.segmentation.prompted_prior`).

The counts ``fused_sam_tiles`` / ``fused_prior_tiles`` (whether SAM passed the guard) go
into ``run.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from geofloodsam.raster.sensors import SensorInfo
from geofloodsam.segmentation import prompted_prior
from geofloodsam.tiles.executor import WorkFunction
from geofloodsam.tiles.tasks import ChunkJob, ChunkResult, TileResult, TileState
from geofloodsam.tiles.work import RunEmbeddings, crop_probability, run_chunk
from geofloodsam.water.fusion import MIN_AGREEMENT, guarded_gate
from geofloodsam.water.scene_prior import PriorSpec, window_prior


@dataclass
class PriorJob:
    """A chunk of tiles with the scene prior to map, fuse or select them with."""

    job: ChunkJob
    sensor: dict  # SensorInfo.to_dict()
    prior: dict  # PriorSpec.to_dict()

    def specs(self) -> tuple[SensorInfo, PriorSpec]:
        """The scene's sensor and the spec tiles rebuild its prior from."""
        return SensorInfo.from_dict(self.sensor), PriorSpec.from_dict(self.prior)


@dataclass
class TileJob:
    """What a tile task is sent: its scene's work function and that function's payload."""

    work: WorkFunction  # work(model, scene, stretch, payload, keeper) -> ChunkResult
    payload: ChunkJob | PriorJob


def run_tile_chunk(model, scene, stretch, task: TileJob, keeper: RunEmbeddings) -> ChunkResult:
    """The work of one chunk: the work function its scene's plan named, on its payload."""
    return task.work(model, scene, stretch, task.payload, keeper)


def index_chunk(model, scene, stretch, payload: PriorJob, keeper: RunEmbeddings) -> ChunkResult:
    """``index``: each tile mapped by the scene prior alone (no model)."""
    info, spec = payload.specs()
    return _index_chunk(scene, info, spec, payload.job)


def select_chunk(
    model, scene, stretch, payload: PriorJob, keeper: RunEmbeddings
) -> ChunkResult:
    """``select``: a click selects its water body of SAM's and the prior's fused evidence."""
    info, spec = payload.specs()
    return prompted_prior.select_chunk(model, scene, stretch, payload.job, keeper, info, spec)


def fused_chunk(model, scene, stretch, payload: PriorJob, keeper: RunEmbeddings) -> ChunkResult:
    """``fused``: each tile's SAM probability gated by the tile's prior (featureless: prior)."""
    info, spec = payload.specs()
    job = payload.job
    out = run_chunk(model, scene, stretch, job, keeper)
    for k, (task, tile) in enumerate(zip(job.tasks, out.tiles, strict=True)):
        if tile.state is TileState.SKIPPED:
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


#: the work function of each way a scene's tiles use its prior (``ScenePlan.prior_method``)
PRIOR_WORK: dict[str, WorkFunction] = {
    "index": index_chunk,
    "fused": fused_chunk,
    "select": select_chunk,
}


def _count(out: ChunkResult, name: str) -> None:
    out.counts[name] = out.counts.get(name, 0) + 1


def _prior_tile(prior, task, threshold: float) -> TileResult:
    prob = prior.probability()
    prob[~prior.valid] = 0.0
    crop = crop_probability(prob, threshold)
    return TileResult([crop] * len(task.seeds), {}, prob.shape, TileState.INDEX)


def _index_chunk(scene, info: SensorInfo, spec: PriorSpec, job: ChunkJob) -> ChunkResult:
    out = ChunkResult()
    for task in job.tasks:
        t0 = time.perf_counter()
        prior = window_prior(scene.ds, info, spec, task.window)
        out.read_s += time.perf_counter() - t0
        if not prior.valid.any():
            out.tiles.append(TileResult(None, {}, (0, 0), TileState.SKIPPED))
            continue
        out.tiles.append(_prior_tile(prior, task, job.threshold))
    return out
