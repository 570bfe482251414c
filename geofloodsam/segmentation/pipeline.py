"""The ``segment`` pipeline: tiled, prompted flood segmentation of large georeferenced rasters.

One scene or many; the scenes are never read whole and no full-scene array is ever allocated.

1. Check and plan every scene before anything runs: open it, compute one scene-level
   stretch, read the prompts into its pixels and seed its tiles
   (:mod:`geofloodsam.tiles.engine`). With several scenes, one prompts file serves them all:
   each feature goes to every scene that contains it
   (:mod:`geofloodsam.segmentation.scenes`); a scene that receives nothing to segment is
   skipped with a warning.
2. Choose where the tile work runs (:mod:`geofloodsam.segmentation.distributed`): in this
   process (the model loaded here; no Dask involved), on a local Dask cluster of ``workers``
   processes,
   or on an existing cluster at ``scheduler``, where every worker is checked and loads the
   model once.
3. Run each scene's waves: the tile work (read + encode + decode, :mod:`geofloodsam.tiles.work`)
   goes through the executor; the outcomes come back in submission order into the scene's
   :class:`~geofloodsam.tiles.engine.TileEngine` and on-disk
   :class:`~geofloodsam.tiles.store.TileStore`. On a cluster several scenes are in flight.
4. When a scene has no more waves, blend it row strip by row strip into the mask (and
   probability) GeoTIFFs and polygons, convert to COGs, write the GeoPackage and
   ``run.json``: everything under temporary names in its OUTDIR, renamed at the very end
   (:mod:`geofloodsam.segmentation.outputs`).

The outputs do not depend on where the tile work ran, provided each tile is computed with
the same number of torch threads (``threads``): torch's CPU kernels add up in an order that
depends on it, which moves logits by about 1e-6.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import rasterio

from geofloodsam.errors import GeofloodsamError, check_interrupted
from geofloodsam.files.space import reporting_full_disk
from geofloodsam.files.workdirs import make_workdir, sweep_stale
from geofloodsam.model.decoders import default_decoder
from geofloodsam.progress import tqdm
from geofloodsam.segmentation.config import SegmentConfig
from geofloodsam.segmentation.outputs import RunInfo, SegmentResult, finish_scene, space_needed
from geofloodsam.segmentation.plan import (
    ScenePlan,
    one_scene_prompts,
    plan_scene,
    plan_scenes,
    remove_dirs,
    scene_paths,
)
from geofloodsam.segmentation.prior_tiles import run_tile_chunk
from geofloodsam.tiles.engine import TileEngine
from geofloodsam.tiles.executor import Executor, LocalExecutor
from geofloodsam.tiles.store import TileStore

if TYPE_CHECKING:  # torch is imported where a model is loaded, not for --method index
    from geofloodsam.model.sam import PromptableModel

#: GDAL's block cache during a run (MB), unless GDAL_CACHEMAX is set: GDAL's default (5 % of
#: RAM) would otherwise fill with the scene's blocks and memory would grow with scene size
GDAL_CACHE_MB = 64


# --------------------------------------------------------------------------- where tiles run
@dataclass
class _Backend:
    """The executor of the tile work and what the run records of it."""

    executor: Executor  # LocalExecutor or distributed.DaskExecutor
    model_info: dict[str, Any]
    record: dict[str, Any]  # for run.json: kind, scheduler, workers, threads
    load_s: float  # loading the model (in-process) or connecting + preflight (Dask)
    batch_size: int  # tiles per task (encoded together)
    max_active: int  # scenes in flight at once
    decoder: str | None = None  # the decoder the run loaded (None: no SAM)

    def run_info(self, scene_started: float, run_started: float) -> RunInfo:
        """What a finished scene records of the run (times from ``time.perf_counter``)."""
        return RunInfo(
            self.model_info, {**self.record, "batch_size": self.batch_size}, self.load_s,
            run_started, scene_started, self.decoder,
        )


@contextlib.contextmanager
def _open_backend(
    config: SegmentConfig, decoder: str | None, sam_model, scene_paths: list[str],
    cache_dir: Path,
) -> Iterator[_Backend]:
    """In-process (the model loaded here), or a Dask session checked by ``preflight``.

    ``decoder``: the run's decoder (:func:`_run_decoder`; None: no scene runs SAM).
    """
    if config.distributed:
        with _dask_backend(config, config.model_spec(decoder), scene_paths) as backend:
            backend.decoder = decoder
            yield backend
        return
    if sam_model is None and decoder is None:
        executor = LocalExecutor(None, cache_dir)
        record = {"kind": "in-process", "scheduler": None, "workers": 1, "threads": 1,
                  "torch_threads": []}
        info = {"model": None, "decoder": None,
                "note": "--method index: the water index alone, no SAM model loaded"}
        try:
            yield _Backend(executor, info, record, 0.0, 1, 1, decoder)
        finally:
            executor.close()
        return
    import torch

    t0 = time.perf_counter()
    if sam_model is None:
        sam_model = config.model_spec(decoder).load()
    load_s = time.perf_counter() - t0
    before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    executor = LocalExecutor(sam_model, cache_dir)
    record = {"kind": "in-process", "scheduler": None, "workers": 1, "threads": 1,
              "torch_threads": [torch.get_num_threads()]}
    try:
        yield _Backend(
            executor, _model_info(sam_model), record, load_s,
            max(1, int(getattr(sam_model, "batch_size", 1))), 1, decoder,
        )
    finally:
        executor.close()
        torch.set_num_threads(before)


@contextlib.contextmanager
def _dask_backend(config: SegmentConfig, spec, scene_paths: list[str]) -> Iterator[_Backend]:
    """A Dask session whose workers passed ``preflight`` and load the model of ``spec``."""
    from geofloodsam.segmentation import distributed as dist

    t0 = time.perf_counter()
    with dist.open_session(
        config.scheduler, config.workers, connect_timeout=dist.CONNECT_TIMEOUT
    ) as session:
        report = dist.preflight(
            session.client, spec.portable(), scene_paths, torch_threads=config.threads
        )
        record = {"kind": "dask", **session.describe(), "torch_threads": report.torch_threads}
        yield _Backend(
            dist.DaskExecutor(session.client, report.plugin), report.model_info, record,
            time.perf_counter() - t0, report.batch_size, max(2, int(record["threads"])),
        )


def _check_backend(config: SegmentConfig, sam_model) -> None:
    """Errors in ``scheduler`` / ``workers`` before any scene is read."""
    if config.distributed:  # Dask is imported only when asked for
        from geofloodsam.segmentation.distributed import check_session_args

        check_session_args(config.scheduler, config.workers)
    if sam_model is not None and config.distributed:
        raise GeofloodsamError(
            "a loaded sam_model cannot be sent to Dask workers: give model=, checkpoint= and "
            "decoder= instead, and each worker loads the model itself."
        )


# --------------------------------------------------------------------------- running
class _SceneRun:
    """A scene in flight: its work folder, tile store, engine and waves."""

    def __init__(self, plan: ScenePlan, backend: _Backend, progress, token: str) -> None:
        self.plan = plan
        self.started = time.perf_counter()
        self.workdir = make_workdir(plan.out, f".{plan.stem}.geofloodsam-")
        try:
            self._start(plan, backend, progress, token)
        except BaseException:
            self.close()
            raise

    def _start(self, plan: ScenePlan, backend: _Backend, progress, token: str) -> None:
        config = plan.config
        self.engine = TileEngine(
            plan.grid, TileStore(self.workdir / "tiles"), plan.objects, key=(token, plan.number),
            threshold=config.threshold, progress=progress,
            skip_nodata_tiles=plan.prompt_set is None,
            max_object_tiles=config.max_object_tiles,
            keep_embeddings=any(s.propagate for tile in plan.seeds.values() for s in tile),
            batch_size=backend.batch_size,
        )
        self._waves = self.engine.waves(plan.seeds)

    def next_wave(self):
        """The next wave's jobs, or None when the scene is done."""
        return next(self._waves, None)

    def close(self) -> None:
        """Remove the work folder."""
        shutil.rmtree(self.workdir, ignore_errors=True)


def _run_plans(
    plans: list[ScenePlan], backend: _Backend, quiet: bool, t_start: float
) -> list[SegmentResult]:
    """Run every scene's waves through the executor; write each scene when it is done.

    Up to ``backend.max_active`` scenes are in flight; each round sends the current wave of
    every one of them and takes the outcomes back in that order.
    """
    token = uuid.uuid4().hex[:12]
    queue, active, done = list(plans), [], {}
    total = sum(len(p.grid) for p in plans)  # known up front: every tile is settled once
    with tqdm(total=total, unit="tile", desc="segment", disable=quiet, leave=False) as bar:
        try:
            with reporting_full_disk(_space_needs(plans), "tile store and outputs"):
                while queue or active:
                    while queue and len(active) < backend.max_active:
                        active.append(_SceneRun(queue.pop(0), backend, bar, token))
                    jobs = []
                    for run in list(active):
                        wave = run.next_wave()
                        if wave is not None:
                            jobs += [(run, job) for job in wave]
                            continue
                        active.remove(run)
                        try:
                            done[run.plan.number] = finish_scene(
                                run.plan, run.engine.store, run.engine.stats, run.workdir,
                                backend.run_info(run.started, t_start),
                            )
                        finally:
                            backend.executor.forget(run.engine.embedding_keys())
                            run.close()
                    items = ((run.plan.spec, run.plan.payload(job)) for run, job in jobs)
                    outcomes = backend.executor.map(run_tile_chunk, items, cache=True)
                    for (run, job), outcome in zip(jobs, outcomes, strict=True):
                        check_interrupted()  # a stop signal that native code swallowed
                        run.engine.take(job, outcome)
        finally:
            for run in active:
                run.close()
    return [done[p.number] for p in plans]


def _space_needs(plans: list[ScenePlan]) -> dict[Path, int]:
    """Output folder -> the most bytes the run writes there at once (for a full disk's line)."""
    needs: dict[Path, int] = {}
    for plan in plans:
        needs[plan.out] = needs.get(plan.out, 0) + space_needed(plan)
    return needs


# --------------------------------------------------------------------------- set-up
def _run_decoder(plans: list[ScenePlan], config: SegmentConfig, sam_model) -> str | None:
    """The one decoder the run loads; None when no scene runs SAM (``index`` only).

    The first scene's choice (:func:`geofloodsam.water.methods.choose`; a warning when other
    scenes would pick another); a default name the package does not ship for the model
    falls back to ``pretrained``; a given ``sam_model`` keeps its own. The plans keep their
    own choices: each scene's ``run.json`` says what was loaded
    (:func:`geofloodsam.segmentation.outputs.finish_scene`).
    """
    wanted = [p.choice.decoder for p in plans if p.choice.method != "index"]
    if not wanted:
        return None
    decoder = wanted[0]
    others = sorted(set(wanted) - {decoder})
    if others:
        click.echo(
            f"Warning: the scenes would each pick their own decoder ({decoder}, "
            f"{', '.join(others)}); the run loads one: {decoder} for every scene (pass "
            "--decoder to choose, or run the sensors in separate commands).",
            err=True,
        )
    if config.decoder is None:  # a default: when shipped for this model
        decoder = default_decoder(config.model, decoder)
    if sam_model is not None:
        decoder = getattr(sam_model, "decoder_name", decoder)
    return decoder


def _model_info(model) -> dict[str, Any]:
    info = model.info() if hasattr(model, "info") else {}
    return dict(info) if info else {"model": type(model).__name__}


def _plan(scenes, paths: list | None, outdir, config: SegmentConfig) -> list[ScenePlan]:
    """Every scene checked and planned: the ``paths`` of several, else the one ``scenes``."""
    if paths is not None:
        return plan_scenes(paths, outdir, config, config.stretch_spec, config.quiet)
    reader = one_scene_prompts(config.prompts, config.prompts_crs, config.prompts_layer)
    return [plan_scene(0, scenes, outdir, config, config.stretch_spec, reader)]


def _run(
    plans: list[ScenePlan], config: SegmentConfig, sam_model, t_start: float
) -> list[SegmentResult]:
    """Load the model (or start Dask) and run the planned scenes."""
    for out in dict.fromkeys(p.out for p in plans):  # what killed runs left here
        sweep_stale(out)
    decoder = _run_decoder(plans, config, sam_model)
    with reporting_full_disk(_space_needs(plans), "tile store and outputs"):
        cache_dir = make_workdir(plans[0].out, ".geofloodsam-embeddings-")
    try:
        with _open_backend(
            config, decoder, sam_model, [p.spec.path for p in plans], cache_dir
        ) as backend:
            return _run_plans(plans, backend, config.quiet, t_start)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


# --------------------------------------------------------------------------- entry point
def segment(
    scenes: str | Path | Sequence[str | Path],
    prompts: str | Path | None = None,
    outdir: str | Path | None = None,
    config: SegmentConfig | None = None,
    *,
    sam_model: PromptableModel | None = None,
    **overrides: Any,
) -> SegmentResult | list[SegmentResult]:
    """Segment flood water in georeferenced rasters; write masks, polygons and run records.

    Args:
        scenes: the GeoTIFF (any GDAL raster with a CRS), or several of them: a list of
            paths, or a scene list (``.txt``/``.lst``/``.list``, one path a line). One path
            returns a :class:`SegmentResult`; several return a list (the scenes that were
            segmented, in order).
        prompts: a vector file of water points and boxes (any CRS); ``None``: the
            config's (default: promptless, every tile is segmented with a whole-tile box).
            With several scenes, each feature goes to every scene that contains it; a scene
            with no water point or box in it is skipped with a warning.
        outdir: output folder (default: each scene's folder).
        config: the run's settings (:class:`~geofloodsam.segmentation.config.SegmentConfig`,
            whose fields document every option and its default); default: the defaults.
        sam_model: an already loaded :class:`~geofloodsam.model.sam.PromptableModel` (tests;
            in-process only); the config's ``model``, ``checkpoint``, ``decoder`` and
            ``device`` are then not used to load one.
        overrides: config fields to replace, e.g. ``method="index"``, ``tile_size=512``,
            ``workers=4`` (an unknown name is a one-line error). With ``workers``, a local
            Dask cluster is started with ``spawn``: in a script, call ``segment`` under
            ``if __name__ == "__main__":``.

    The outputs do not depend on where the tiles were computed, given the same ``threads``.
    """
    t_start = time.perf_counter()
    if prompts is not None:
        overrides["prompts"] = prompts
    config = SegmentConfig.with_overrides(config, **overrides)
    _check_backend(config, sam_model)
    many = scene_paths(scenes)  # None: one scene, one result
    plans: list[ScenePlan] = []
    gdal_env = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": GDAL_CACHE_MB}
    try:
        with rasterio.Env(**gdal_env):
            plans = _plan(scenes, many, outdir, config)
            results = _run(plans, config, sam_model, t_start)
    except BaseException:
        for plan in reversed(plans):
            remove_dirs(plan.created)
        raise
    if not config.quiet:
        for result in results:
            click.echo(result.summary(), err=True)
    return results if many is not None else results[0]
