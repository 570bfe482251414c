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
4. When a scene has no more waves, blend it row band by row band into the mask (and
   probability) GeoTIFFs and polygons, convert to COGs, write the GeoPackage and
   ``run.json``: everything under temporary names in its OUTDIR, renamed at the very end
   (:mod:`geofloodsam.segmentation.outputs`).

The outputs do not depend on where the tile work ran, provided each tile is computed with
the same number of torch threads (``threads``): torch's CPU kernels add up in an order that
depends on it, which moves logits by about 1e-6.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import rasterio

from geofloodsam.errors import GeofloodsamError, check_interrupted
from geofloodsam.files.space import reporting_full_disk
from geofloodsam.files.workdirs import make_workdir, sweep_stale
from geofloodsam.model.decoders import DecoderSpec, default_decoder
from geofloodsam.progress import tqdm
from geofloodsam.raster.scene import parse_stretch
from geofloodsam.segmentation.config import SegmentConfig
from geofloodsam.segmentation.outputs import RunInfo, SegmentResult, finish_scene, space_needed
from geofloodsam.segmentation.plan import (
    ScenePlan,
    is_many,
    one_scene_prompts,
    plan_scene,
    plan_scenes,
    remove_dirs,
)
from geofloodsam.segmentation.prior_tiles import run_tile_chunk
from geofloodsam.tiles.engine import MAX_OBJECT_TILES, TileEngine
from geofloodsam.tiles.store import TileStore
from geofloodsam.tiles.work import LocalExecutor

if TYPE_CHECKING:  # torch is imported where a model is loaded, not for --method index
    from geofloodsam.model.sam import PromptableModel

#: GDAL's block cache during a run (MB), unless GDAL_CACHEMAX is set: GDAL's default (5 % of
#: RAM) would otherwise fill with the scene's blocks and memory would grow with scene size
GDAL_CACHE_MB = 64


# --------------------------------------------------------------------------- where tiles run
@dataclass
class _Backend:
    """The executor of the tile work and what the run records of it."""

    executor: Any  # distributed.LocalExecutor or DaskExecutor
    model_info: dict[str, Any]
    record: dict[str, Any]  # for run.json: kind, scheduler, workers, threads
    load_s: float  # loading the model (in-process) or connecting + preflight (Dask)
    batch_size: int  # tiles per task (encoded together)
    max_active: int  # scenes in flight at once

    def run_info(self, scene_started: float, run_started: float) -> RunInfo:
        """What a finished scene records of the run (times from ``time.perf_counter``)."""
        return RunInfo(
            self.model_info, {**self.record, "batch_size": self.batch_size}, self.load_s,
            run_started, scene_started,
        )


@contextlib.contextmanager
def _open_backend(
    config: SegmentConfig, model: str, checkpoint, decoder, sam_model, scene_paths: list[str],
    cache_dir: Path, needs_model: bool = True,
) -> Iterator[_Backend]:
    """In-process (the model loaded here), or a Dask session checked by ``preflight``."""
    scheduler, workers, threads = config.scheduler, config.workers, config.threads
    spec = DecoderSpec.parse(decoder, model)
    t0 = time.perf_counter()
    if scheduler is None and workers is None and sam_model is None and not needs_model:
        executor = LocalExecutor(None, cache_dir)
        record = {"kind": "in-process", "scheduler": None, "workers": 1, "threads": 1,
                  "torch_threads": []}
        info = {"model": None, "decoder": None,
                "note": "--method index: the water index alone, no SAM model loaded"}
        try:
            yield _Backend(executor, info, record, 0.0, 1, 1)
        finally:
            executor.close()
        return
    if scheduler is None and workers is None:
        import torch

        if sam_model is None:
            from geofloodsam.model.sam import load_model

            sam_model = load_model(
                model, checkpoint=checkpoint, decoder=spec, device=config.device,
                precision=config.precision, runtime=config.runtime,
            )
        load_s = time.perf_counter() - t0
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        executor = LocalExecutor(sam_model, cache_dir)
        record = {"kind": "in-process", "scheduler": None, "workers": 1, "threads": 1,
                  "torch_threads": [torch.get_num_threads()]}
        try:
            yield _Backend(
                executor, _model_info(sam_model), record, load_s,
                max(1, int(getattr(sam_model, "batch_size", 1))), 1,
            )
        finally:
            executor.close()
            torch.set_num_threads(before)
        return
    from geofloodsam.segmentation import distributed as dist

    spec = dist.ModelSpec(
        model, None if checkpoint is None else str(Path(checkpoint).resolve()),
        spec.portable(),
        config.device,
        precision=config.precision,
        runtime=config.runtime,
    )
    with dist.open_session(scheduler, workers, connect_timeout=dist.CONNECT_TIMEOUT) as session:
        report = dist.preflight(session.client, spec, scene_paths, torch_threads=threads)
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
                                backend.run_info(run.started, t_start), quiet,
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
def _run_decoder(
    plans: list[ScenePlan], config: SegmentConfig, model: str, sam_model
) -> tuple[str | None, bool]:
    """The one decoder the run loads, and whether SAM runs at all (not for ``index`` only).

    The first scene's choice (:func:`geofloodsam.water.methods.choose`; a warning when other
    scenes would pick another); a default name the package does not ship for ``model`` falls
    back to ``pretrained``; a given ``sam_model`` keeps its own. Each plan's recorded choice
    is set to what is loaded.
    """
    wanted = [p.choice.decoder for p in plans if p.choice.method != "index"]
    if not wanted:
        return None, False
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
        decoder = default_decoder(model, decoder)
    if sam_model is not None:
        decoder = getattr(sam_model, "decoder_name", decoder)
    for plan in plans:  # run.json says what was loaded
        if plan.choice.method != "index" and plan.choice.decoder != decoder:
            plan.choice = dataclasses.replace(
                plan.choice, decoder=decoder, reason=f"{plan.choice.reason}; loaded: {decoder}"
            )
    return decoder, True


def _model_info(model) -> dict[str, Any]:
    info = model.info() if hasattr(model, "info") else {}
    return dict(info) if info else {"model": type(model).__name__}


# --------------------------------------------------------------------------- entry point
def segment(
    scene: str | Path | Sequence[str | Path],
    prompts: str | Path | None = None,
    outdir: str | Path | None = None,
    model: str = "vit_t",
    checkpoint: str | Path | None = None,
    decoder: str | Path | None = None,
    bands: str | Iterable[int] | None = None,
    stretch: str | tuple[float, float] = "auto",
    sensor: str = "auto",
    method: str = "auto",
    tile_size: int = 1024,
    overlap: int = 256,
    threshold: float = 0.5,
    min_area: float = 0.0,
    simplify: float = 0.0,
    save_prob: bool = False,
    device: str = "auto",
    precision: str = "auto",
    runtime: str = "auto",
    quiet: bool = False,
    prompts_crs: str | None = None,
    prompts_layer: str | None = None,
    sam_model: PromptableModel | None = None,
    max_object_tiles: int = MAX_OBJECT_TILES,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> SegmentResult | list[SegmentResult]:
    """Segment flood water in georeferenced rasters; write masks, polygons and run records.

    Args:
        scene: the GeoTIFF (any GDAL raster with a CRS), or several of them: a list of
            paths, or a scene list (``.txt``/``.lst``/``.list``, one path a line). One path
            returns a :class:`SegmentResult`; several return a list (the scenes that were
            segmented, in order).
        prompts: a vector file of water points and boxes (any CRS); ``None``: promptless,
            every tile is segmented with a whole-tile box. With several scenes, each feature
            goes to every scene that contains it; a scene with no water point or box in it
            is skipped with a warning.
        outdir: output folder (default: each scene's folder).
        model, checkpoint, decoder, device: the SAM to load; ignored when ``sam_model`` is
            given. Decoder default: by sensor and method
            (:func:`geofloodsam.water.methods.choose`): ``satellite`` for every sensor,
            promptless or prompted.
        precision, runtime: the image encoder's path (``auto``: the fastest that keeps masks
            within IoU 0.98 of fp32 on this hardware; ``fp32`` + ``torch``: the reference),
            see :func:`geofloodsam.model.precision.resolve_encoder`.
        bands, stretch: band selection (1 or 3, 1-based) and ``auto`` or ``(MIN, MAX)``.
            Without them, Sentinel-1/-2 scenes are read as their fixed physical composite.
        sensor: ``auto`` (detected from bands, type, descriptions, values; recorded in
            run.json with the reason), ``s2``, ``s1``, ``naip`` or ``rgb`` (checked).
        method: ``sam``, ``index`` (the water index alone), ``fused`` (index + SAM, the
            guarded gate) or ``auto`` (fused for promptless s1/s2/naip, else sam); see
            :mod:`geofloodsam.water.methods`.
        tile_size, overlap: the tile grid (pixels).
        threshold: water where the blended probability is above it.
        min_area, simplify: polygon filter (m²) and simplification tolerance (metres).
        save_prob: also write the probability COG.
        quiet: no progress bar, no summary line (warnings still go to stderr).
        prompts_crs: the CRS of a prompts file that has none.
        prompts_layer: the layer of a prompts file with several (a GeoPackage).
        sam_model: an already loaded :class:`~geofloodsam.model.sam.PromptableModel` (tests;
            in-process only).
        max_object_tiles: how many tiles one point object may spread over.
        scheduler: run the tile work on the Dask cluster at this address.
        workers: run the tile work on a local Dask cluster of this many processes (started
            with ``spawn``: in a script, call ``segment`` under ``if __name__ == "__main__":``).
        threads: torch threads per tile task (default: all cores in-process; on Dask, each
            worker's share of its host's cores). Runs with the same ``threads`` give
            bit-identical outputs wherever the tiles were computed.
    """
    t_start = time.perf_counter()
    stretch_spec = parse_stretch(stretch)
    config = SegmentConfig(
        prompts=None if prompts is None else str(prompts),
        prompts_crs=prompts_crs,
        prompts_layer=prompts_layer,
        bands=bands if bands is None or isinstance(bands, str) else list(bands),
        stretch=stretch if isinstance(stretch, str) else list(stretch_spec),
        sensor=sensor,
        method=method,
        decoder=None if decoder is None else str(decoder),
        tile_size=tile_size,
        overlap=overlap,
        threshold=threshold,
        min_area=min_area,
        simplify=simplify,
        save_prob=save_prob,
        device=device,
        precision=precision,
        runtime=runtime,
        max_object_tiles=max_object_tiles,
        scheduler=scheduler,
        workers=workers,
        threads=threads,
    )
    config.check()
    _check_backend(config, sam_model)
    many = is_many(scene)
    plans: list[ScenePlan] = []
    gdal_env = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": GDAL_CACHE_MB}
    try:
        with rasterio.Env(**gdal_env):
            if many:
                plans = plan_scenes(
                    [scene] if isinstance(scene, (str, Path)) else list(scene), outdir, config,
                    stretch_spec, quiet,
                )
            else:
                reader = one_scene_prompts(prompts, prompts_crs, prompts_layer)
                plans = [plan_scene(0, scene, outdir, config, stretch_spec, reader)]
            for out in dict.fromkeys(p.out for p in plans):  # what killed runs left here
                sweep_stale(out)
            decoder, needs_model = _run_decoder(plans, config, model, sam_model)
            with reporting_full_disk(_space_needs(plans), "tile store and outputs"):
                cache_dir = make_workdir(plans[0].out, ".geofloodsam-embeddings-")
            try:
                with _open_backend(
                    config, model, checkpoint, decoder, sam_model,
                    [p.spec.path for p in plans], cache_dir, needs_model,
                ) as backend:
                    results = _run_plans(plans, backend, quiet, t_start)
            finally:
                shutil.rmtree(cache_dir, ignore_errors=True)
    except BaseException:
        for plan in reversed(plans):
            remove_dirs(plan.created)
        raise
    if not quiet:
        for result in results:
            click.echo(result.summary(), err=True)
    return results if many else results[0]
