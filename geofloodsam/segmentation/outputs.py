"""Finishing one scene of ``segment``: blend, vectorise and write its outputs, and its record.

Once a scene has no more waves, :func:`finish_scene` blends its tile store row strip by row
strip into the mask (and probability) COGs while the strips feed the polygonizer and the
water area, writes the GeoPackage and ``run.json`` under temporary names in the scene's
work folder, and renames them all into OUTDIR at the very end with
:func:`~geofloodsam.files.atomic.replace_all`: every target is checked first and a failure
puts back the previous outputs exactly as they were.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from geofloodsam import __version__
from geofloodsam.errors import GeofloodsamError, check_interrupted
from geofloodsam.files.atomic import replace_all
from geofloodsam.files.hashing import sha256_file
from geofloodsam.files.space import holding_native_stderr, reporting_full_disk
from geofloodsam.geo.area import row_pixel_areas
from geofloodsam.qgis.style import write_mask_qml
from geofloodsam.stitch.blend import Strip, write_blended
from geofloodsam.tiles.engine import ALIKE
from geofloodsam.vector.polygonize import (
    StripPolygonizer,
    polygon_table,
    write_gpkg,
)

if TYPE_CHECKING:
    from geofloodsam.segmentation.plan import ScenePlan
    from geofloodsam.tiles.engine import EngineStats
    from geofloodsam.tiles.store import TileStore


@dataclass
class RunInfo:
    """What a finished scene records of the run it was part of."""

    model_info: dict[str, Any]  # model.info(): model, checkpoint and decoder hashes, device
    executor: dict[str, Any]  # where the tile work ran: kind, scheduler, workers, threads, ...
    load_s: float  # loading the model (in-process) or connecting + preflight (Dask)
    run_started: float  # time.perf_counter() at the start of the run
    scene_started: float  # ... and when this scene's first wave was sent
    decoder: str | None = None  # the decoder the run loaded (None: no SAM)


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
        alike = " and the water alike" if r["prompts"].get("water_alike") else ""
        return (
            f"{Path(r['inputs']['scene']).name}: {r['water']['area_m2'] / 1e6:.4g} km² of water "
            f"in {r['water']['polygons']} polygon(s) from {r['prompts']['objects']} object(s)"
            f"{alike}; "
            f"{r['tiles']['encoded']} tile(s) encoded, {r['timings']['total_s']:.1f} s -> "
            f"{self.mask_path.parent}"
        )


def output_paths(outdir: Path, stem: str) -> dict[str, Path]:
    """Final output paths of a scene called ``stem`` in ``outdir``."""
    return {
        "mask": outdir / f"{stem}_mask.tif",
        "style": outdir / f"{stem}_mask.qml",  # QGIS loads it as the mask's default style
        "prob": outdir / f"{stem}_prob.tif",
        "gpkg": outdir / f"{stem}_flood.gpkg",
        "run": outdir / f"{stem}_run.json",
    }


def space_needed(plan: ScenePlan) -> int:
    """An upper bound of the bytes a scene's run writes in its output folder at once.

    The tile store (float16 probabilities, at most a whole tile per grid tile) plus the mask
    (and probability) GeoTIFF twice over (the plain one and its COG copy, uncompressed
    bound) and the polygons (bounded by the mask's size).
    """
    grid = plan.grid
    pixels = grid.width * grid.height
    rasters = 2 if plan.config.save_prob else 1
    return len(grid) * grid.tile_size**2 * 2 + rasters * 2 * pixels + pixels


class _StripSink:
    """Receives each written strip: feeds the polygonizer and adds up the water area."""

    def __init__(self, scene) -> None:
        self.scene = scene
        self.polygonizer = StripPolygonizer(scene.width)
        self.pixels = 0
        self.area_m2 = 0.0

    def __call__(self, strip: Strip, water: np.ndarray) -> None:
        self.polygonizer.add_strip(strip.y0, water, strip.ids)
        per_row = np.count_nonzero(water[:, strip.x0 : strip.x1], axis=1)
        if per_row.any():
            self.pixels += int(per_row.sum())
            self.area_m2 += float(per_row @ row_pixel_areas(
                self.scene.transform, self.scene.crs, self.scene.width, strip.y0, strip.y1
            ))


def _object_ids(plan: ScenePlan, internal) -> list[int]:
    """The users' object ids of the engine's internal object indices, sorted."""
    return sorted({int(plan.objects[k].object_id) for k in internal})


def finish_scene(
    plan: ScenePlan, store: TileStore, stats: EngineStats, workdir: Path, info: RunInfo
) -> SegmentResult:
    """Blend, vectorize and write one scene's outputs (in ``workdir``, then the renames)."""
    with reporting_full_disk({plan.out: space_needed(plan)}, "tile store and outputs"):
        with plan.open_scene() as sc:
            _check_tiles(sc, plan, stats)
            _warn_objects(plan, stats)
            written = _write_outputs(sc, plan, store, workdir, info)
            final = output_paths(plan.out, plan.stem)
            timings = _timings(info, stats, written)
            record = _record(sc, plan, info, stats, written, final, timings)
        record["executor"] = _executor_record(info.executor, stats)
        run_tmp = workdir / "run.json"
        run_tmp.write_text(json.dumps(record, indent=2) + "\n")
        cogs = written.cogs
        moves = [(cogs["mask"], final["mask"]), (written.gpkg, final["gpkg"]),
                 (run_tmp, final["run"])]
        moves.insert(1, (write_mask_qml(workdir / "mask.qml"), final["style"]))
        if "prob" in cogs:
            moves.insert(1, (cogs["prob"], final["prob"]))
        check_interrupted()  # the last point where a stopped run leaves the earlier outputs
        replace_all(moves)
    return SegmentResult(
        final["mask"], final["prob"] if "prob" in cogs else None, final["gpkg"], final["run"],
        record,
    )


@dataclass
class _Written:
    """A scene's outputs in its work folder, and what writing them found and took."""

    cogs: dict[str, Path]  # mask (and prob) COGs
    gpkg: Path
    water: dict[str, Any]  # pixels, area_m2
    polygons: int
    stitch_s: float
    vectorize_s: float


def _check_tiles(sc, plan: ScenePlan, stats: EngineStats) -> None:
    """One-line errors when no tile could be segmented; a warning for featureless tiles."""
    blank = len(stats.featureless_tiles)
    if stats.tiles_encoded + stats.tiles_indexed == 0 and blank:
        raise GeofloodsamError(
            f"{sc.path} shows nothing to segment: every tile looked at ({blank}) is one "
            f"colour in bands {','.join(map(str, sc.bands))} after the stretch; check the "
            "file and --bands, or give --stretch MIN,MAX."
        )
    if plan.prompt_set is None and stats.tiles_encoded + stats.tiles_indexed == 0:
        raise GeofloodsamError(
            f"every tile of {sc.path} is nodata in bands {','.join(map(str, sc.bands))}: "
            "nothing to segment; check the file and --bands."
        )
    if blank:
        click.echo(
            f"Warning: {blank} tile(s) of {sc.path} are one colour after the stretch "
            "(featureless): not segmented, mapped dry.",
            err=True,
        )


def _warn_objects(plan: ScenePlan, stats: EngineStats) -> None:
    """Warnings for objects cut at ``max_object_tiles`` and clicks on dry land."""
    if stats.capped_objects:
        ids = _object_ids(plan, stats.capped_objects)
        click.echo(
            f"Warning: object(s) {', '.join(map(str, ids[:10]))} reached the limit of "
            f"{plan.config.max_object_tiles} tiles (--max-object-tiles) and were cut there.",
            err=True,
        )
    dry = _object_ids(plan, stats.dry_objects)
    if len(dry) == 1:
        click.echo(
            f"Warning: object {dry[0]} was clicked on what SAM and the water index both "
            "call dry land: it maps nothing (move the click onto the water).",
            err=True,
        )
    elif dry:  # one line for all of them: every id is in run.json
        more = f" and {len(dry) - 10} more" if len(dry) > 10 else ""
        click.echo(
            f"Warning: objects {', '.join(map(str, dry[:10]))}{more} were clicked on what SAM "
            "and the water index both call dry land: they map nothing (move the clicks onto "
            "the water; run.json tiles.dry_object_ids lists them all).",
            err=True,
        )


def _write_outputs(sc, plan: ScenePlan, store: TileStore, workdir: Path, info: RunInfo):
    """The blended COGs and the polygons' GeoPackage, in ``workdir``."""
    config = plan.config
    t0 = time.perf_counter()
    sink = _StripSink(sc)
    with holding_native_stderr():  # libtiff prints write errors itself: one line instead
        cogs = write_blended(
            sc, plan.grid, store, workdir, config.threshold, config.save_prob, on_strip=sink
        )
    water = {"pixels": sink.pixels, "area_m2": sink.area_m2}
    stitch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    attributes = {
        k: {"object_id": o.object_id, "prompt_type": o.prompt_type}
        for k, o in plan.objects.items()
    }
    frame = polygon_table(
        sink.polygonizer.polygons(), sc.transform, sc.crs, attributes,
        _model_label(plan, info.model_info), config.min_area, config.simplify,
    )
    gpkg = workdir / "flood.gpkg"
    write_gpkg(frame, gpkg)
    return _Written(cogs, gpkg, water, len(frame), stitch_s, time.perf_counter() - t0)


def _alike_record(plan: ScenePlan) -> dict[str, Any] | None:
    """The water alike of a prompted run: the clicks' colours (RGB as the tiles see them)
    and their tolerance; None when there is none (promptless, ``--clicked-only``, a water
    index, no water click)."""
    for info in plan.objects.values():
        if info.prompt_type == ALIKE and info.appearance is not None:
            return {"colours": info.appearance.colours.round(1).tolist(),
                    "tolerance": round(float(info.appearance.tolerance), 2)}
    return None


def _model_label(plan: ScenePlan, model_info: dict[str, Any]) -> str:
    """The polygons' ``model`` attribute: model:decoder, the prior, or both."""
    label = f"{model_info.get('model', '?')}:{model_info.get('decoder', 'pretrained')}"
    if plan.choice is not None and plan.choice.method != "sam":
        what = plan.prior["method"] if plan.prior else "prior"
        label = what if plan.choice.method == "index" else f"{label}+{what}"
    return label


def _timings(info: RunInfo, stats: EngineStats, written: _Written) -> dict[str, float]:
    total_s = time.perf_counter() - info.run_started
    return {
        "total_s": total_s,
        "scene_s": time.perf_counter() - info.scene_started,
        "model_load_s": info.load_s,
        "encoder_s": stats.encoder_s,
        "other_s": total_s - info.load_s - stats.encoder_s,
        "read_s": stats.read_s,
        "decode_s": stats.decode_s,
        "tile_store_s": stats.store_s,
        "propagate_s": stats.propagate_s,
        "stitch_write_s": written.stitch_s,
        "vectorize_s": written.vectorize_s,
    }


def _method_record(plan: ScenePlan, decoder: str | None) -> dict[str, Any] | None:
    """The scene's method choice, with the decoder the run loaded when it differs."""
    choice = plan.choice
    if choice is None:
        return None
    if decoder is not None and choice.method != "index" and choice.decoder != decoder:
        choice = dataclasses.replace(
            choice, decoder=decoder, reason=f"{choice.reason}; loaded: {decoder}"
        )
    return choice.to_dict()


def _executor_record(executor: dict[str, Any], stats: EngineStats) -> dict[str, Any]:
    """Where the tile work ran, and how long its tasks took (seconds of work per task)."""
    seconds = np.asarray(stats.task_seconds, dtype=np.float64)
    by_worker: dict[str, dict[str, float]] = {}
    for worker, s in zip(stats.task_workers, stats.task_seconds, strict=True):
        entry = by_worker.setdefault(worker, {"tasks": 0, "seconds": 0.0})
        entry["tasks"] += 1
        entry["seconds"] = round(entry["seconds"] + s, 4)
    summary = {"count": int(seconds.size)}
    if seconds.size:
        summary.update({
            "total_s": round(float(seconds.sum()), 4),
            "mean_s": round(float(seconds.mean()), 4),
            "median_s": round(float(np.median(seconds)), 4),
            "p95_s": round(float(np.percentile(seconds, 95)), 4),
            "max_s": round(float(seconds.max()), 4),
        })
    return {
        **executor,
        "tile_tasks": summary,
        "tiles_reencoded": stats.tiles_reencoded,
        "by_worker": by_worker,
    }


def _record(
    sc, plan: ScenePlan, info: RunInfo, stats: EngineStats, written: _Written,
    final: dict[str, Path], timings: dict[str, float],
) -> dict[str, Any]:
    """The content of ``run.json`` (the executor's part apart)."""
    scene_path = Path(sc.path)
    water, cogs = written.water, written.cogs
    prompt_set = plan.prompt_set
    prompts = plan.config.prompts
    return {
        "geofloodsam_version": __version__,
        "command": "segment",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            "scene": str(scene_path.resolve()),
            "scene_bytes": scene_path.stat().st_size,
            "prompts": None if prompts is None else str(Path(prompts).resolve()),
            "prompts_sha256": None if prompts is None else sha256_file(Path(prompts)),
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
        "parameters": plan.config.record(),
        "sensor": None if sc.sensor is None else {**sc.sensor.to_dict(), "composite_read":
                                                  bool(sc.composite)},
        "method": _method_record(plan, info.decoder),
        "prior": None if plan.prior is None else {**plan.prior, "tiles": {
            "indexed": stats.tiles_indexed,
            "sam_passed_guard": stats.counts.get("fused_sam_tiles", 0),
            "prior_kept": stats.counts.get("fused_prior_tiles", 0),
        }},
        "model": info.model_info,
        "stretch": plan.stretch.to_dict(),
        "prompts": {
            "mode": "promptless" if prompt_set is None else "prompted",
            "features": 0 if prompt_set is None else prompt_set.n_features,
            "outside": 0 if prompt_set is None else prompt_set.n_outside,
            "source_crs": None if prompt_set is None else prompt_set.source_crs,
            "objects": 0 if prompt_set is None else len(prompt_set.objects),
            "water_alike": _alike_record(plan),
        },
        "tiles": {
            "grid": len(plan.grid),
            "grid_shape": [plan.grid.n_rows, plan.grid.n_cols],
            "encoded": stats.tiles_encoded,
            "decoded": stats.tile_decodes,
            "prompt_decodes": stats.prompt_decodes,
            "covered_seeds": stats.covered_seeds,
            "waves": stats.waves,
            "skipped_nodata": stats.skipped_nodata_tiles,
            "featureless": len(stats.featureless_tiles),
            "capped_objects": len(stats.capped_objects),
            "capped_object_ids": _object_ids(plan, stats.capped_objects),
            "dry_object_ids": _object_ids(plan, stats.dry_objects),
        },
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
        "water": {
            "pixels": water["pixels"], "area_m2": water["area_m2"], "polygons": written.polygons
        },
        "outputs": {
            "mask": final["mask"].name,
            "prob": final["prob"].name if "prob" in cogs else None,
            "polygons": final["gpkg"].name,
            "run": final["run"].name,
        },
    }
