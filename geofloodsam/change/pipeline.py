"""``flood``: map AFTER and BEFORE (or take a reference water layer), then compare.

1. Check everything that can be checked before any model runs: AFTER and BEFORE (or the
   reference) open, have a CRS and overlap; the two sensors may be compared
   (:mod:`geofloodsam.change.sensors`); a reference layer has polygons in the scene.
2. Map AFTER with :func:`geofloodsam.segmentation.pipeline.segment` (prompts, method,
   decoder, Dask: exactly as ``segment``), into a hidden work folder in OUTDIR; then BEFORE
   the same way, with the method and the decoder AFTER's run chose.
3. Combine them window by window on AFTER's grid: BEFORE's mask (another CRS, resolution or
   extent) or the reference is read through a warped VRT (:mod:`geofloodsam.change.align`);
   for a Sentinel-1 pair, the backscatter's log-ratio decides the change when it shows a
   changed population (:mod:`geofloodsam.change.logratio`).
4. Write the class COG, its style, the class polygons and ``run.json`` in the work folder,
   then rename them into OUTDIR all at once; the work folder is removed in every case.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from geofloodsam import __version__
from geofloodsam.change import logratio
from geofloodsam.change.align import Grid, PolygonWater, WarpedMask, is_vector, open_raster
from geofloodsam.change.classes import combine
from geofloodsam.change.config import FloodConfig
from geofloodsam.change.outputs import ClassTally, write_class_polygons, write_classes
from geofloodsam.change.sensors import check_pair
from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import replace_all
from geofloodsam.files.hashing import sha256_file
from geofloodsam.files.workdirs import make_workdir, sweep_stale
from geofloodsam.qgis.style import write_classes_qml
from geofloodsam.stitch.blend import default_strip_height

if TYPE_CHECKING:
    from geofloodsam.model.sam import PromptableModel

CHANGE_CHOICES = ("auto", "water", "log-ratio")


@dataclass
class FloodResult:
    """Paths of ``flood``'s outputs and the content of its ``run.json`` (``record``)."""

    classes_path: Path
    style_path: Path
    gpkg_path: Path
    run_path: Path
    water_paths: dict[str, Path]
    record: dict[str, Any]

    def area_m2(self, name: str) -> float:
        """Geodesic area of class ``name`` (flood, permanent_water, receded, dry)."""
        return float(self.record["classes"][name]["area_m2"])

    def summary(self) -> str:
        """The one-line summary printed at the end of a run."""
        c = self.record["classes"]
        return (
            f"{Path(self.record['after']['scene']).name}: flood {c['flood']['area_m2'] / 1e6:.4g}"
            f" km², permanent water {c['permanent_water']['area_m2'] / 1e6:.4g} km², receded "
            f"{c['receded']['area_m2'] / 1e6:.4g} km² ({self.record['change']['used']}) -> "
            f"{self.classes_path.parent}"
        )


def output_paths(outdir: Path, stem: str) -> dict[str, Path]:
    """Final output paths of ``flood`` for an AFTER scene called ``stem``."""
    return {
        "classes": outdir / f"{stem}_change.tif",
        "style": outdir / f"{stem}_change.qml",
        "gpkg": outdir / f"{stem}_change.gpkg",
        "run": outdir / f"{stem}_change_run.json",
        "water_after": outdir / f"{stem}_water_after.tif",
        "water_before": outdir / f"{stem}_water_before.tif",
    }


def _check_args(before, reference_water, change: str) -> None:
    if (before is None) == (reference_water is None):
        raise GeofloodsamError(
            "give either --before BEFORE (a scene to map) or --reference-water FILE (a water "
            "raster or polygons), exactly one of them."
        )
    if change not in CHANGE_CHOICES:
        raise GeofloodsamError(f"--change {change}: use one of {', '.join(CHANGE_CHOICES)}.")


def _sensor(path: Path, sensor: str, what: str) -> str:
    from geofloodsam.raster.sensors import detect_sensor

    ds = open_raster(path, what)
    try:
        return detect_sensor(ds, sensor).sensor
    finally:
        ds.close()


def _precheck(after: Path, before, config: FloodConfig) -> tuple[Grid, dict]:
    """AFTER's grid, and what was checked of BEFORE or the reference (sources opened and
    closed again: nothing runs yet)."""
    ds = open_raster(after, "AFTER")
    try:
        grid = Grid.of(ds)
    finally:
        ds.close()
    checked: dict[str, Any] = {}
    sensor = config.mapping.sensor
    checked["after_sensor"] = _sensor(after, sensor, "AFTER")
    if before is not None:
        from geofloodsam.change.align import overlap_fraction

        ds = open_raster(Path(before), "BEFORE")
        try:
            overlap_fraction(grid, ds.crs, ds.bounds, Path(before).name, "BEFORE")
        finally:
            ds.close()
        checked["before_sensor"] = _sensor(Path(before), sensor, "BEFORE")
        checked["warning"] = check_pair(
            checked["after_sensor"], checked["before_sensor"], config.allow_mixed_sensors
        )
    return grid, checked


def _reference(path: Path, grid: Grid, minimum: float, layer: str | None):
    if is_vector(path):
        return PolygonWater(path, grid, layer)
    return WarpedMask(path, grid, minimum=minimum, what="REFERENCE_WATER")


def _scene_record(result) -> dict[str, Any]:
    r = result.record
    return {
        "scene": r["inputs"]["scene"],
        "scene_sha256": sha256_file(Path(r["inputs"]["scene"])),
        "prompts": r["inputs"]["prompts"],
        "prompt_mode": r["prompts"]["mode"],
        "grid": r["scene"],
        "sensor": r["sensor"],
        "method": r["method"],
        "prior": r["prior"],
        "model": r["model"],
        "water": r["water"],
        "executor": {k: r["executor"].get(k) for k in ("kind", "workers", "threads")},
    }


def _strips(grid: Grid, after_mask: Path, source, change_rule):
    """(window, classes) row strips of AFTER's grid, top to bottom."""
    import rasterio
    from rasterio.windows import Window

    rows = default_strip_height(grid.width)
    with rasterio.open(after_mask) as ds:
        for y0 in range(0, grid.height, rows):
            window = Window(0, y0, grid.width, min(rows, grid.height - y0))
            values = ds.read(1, window=window)
            a_valid = values != 255
            b_water, b_valid = source.read(window)
            a_water = (values == 1) & a_valid
            if change_rule is None:
                yield window, combine(a_water, a_valid, b_water, b_valid)
            else:
                yield window, change_rule.classes(window, a_water, a_valid, b_water, b_valid)


def flood(
    after: str | Path,
    before: str | Path | None = None,
    outdir: str | Path | None = None,
    prompts: str | Path | None = None,
    before_prompts: str | Path | None = None,
    config: FloodConfig | None = None,
    *,
    sam_model: PromptableModel | None = None,
    **overrides: Any,
) -> FloodResult:
    """Flood extent: water in AFTER that was dry in BEFORE (or in a reference water layer).

    Args:
        after: the scene after (or during) the flood; its grid is the output's grid.
        before: the scene before it, any CRS, resolution and extent (overlapping AFTER),
            mapped the same way as AFTER; or give ``reference_water`` instead.
        outdir: output folder (default: AFTER's folder).
        prompts: water prompts of AFTER (as for ``segment``); None: promptless.
        before_prompts: water prompts of BEFORE; None: BEFORE is mapped promptless (with
            AFTER's method and decoder).
        config: the run's settings (:class:`~geofloodsam.change.config.FloodConfig`: the
            reference layer, ``change`` rule, ``save_water``, the class polygons' filter,
            and the ``mapping`` config both dates are segmented with).
        sam_model: an already loaded model for both dates (tests; in-process only).
        overrides: fields of ``FloodConfig`` (e.g. ``reference_water=``, ``change=``,
            ``min_area=``), else of its mapping ``SegmentConfig`` (e.g. ``method=``,
            ``workers=``, ``quiet=``); an unknown name is a one-line error.

    Writes ``<stem>_change.tif`` (COG, 1 flood, 2 permanent water, 3 receded, 0 dry, 255
    nodata) with ``<stem>_change.qml``, ``<stem>_change.gpkg`` (layers flood,
    permanent_water, receded) and ``<stem>_change_run.json`` into ``outdir``.
    """
    t0 = time.perf_counter()
    config = FloodConfig.with_overrides(config, **overrides)
    _check_args(before, config.reference_water, config.change)
    after = Path(after)
    grid, checked = _precheck(after, before, config)
    reference = None
    if config.reference_water is not None:  # checked (and kept open) before any model runs
        reference = _reference(
            Path(config.reference_water), grid, config.reference_min, config.reference_layer
        )
    outdir = Path(outdir) if outdir is not None else after.parent
    created = not outdir.exists()
    work = None
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        sweep_stale(outdir)
        work = make_workdir(outdir, f".{after.stem}.geofloodsam-flood-")
        result = _run(_Request(
            after, None if before is None else Path(before), prompts, before_prompts,
            reference, grid, checked, work, outdir, config, sam_model, t0,
        ))
    except BaseException:
        if created:
            shutil.rmtree(outdir, ignore_errors=True)
        raise
    finally:
        if reference is not None:
            reference.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    if not config.mapping.quiet:
        click.echo(result.summary(), err=True)
    return result


@dataclass
class _Request:
    """One ``flood`` run: its inputs, the checks' findings and where it writes."""

    after: Path
    before: Path | None
    prompts: Any
    before_prompts: Any
    reference: Any  # an open PolygonWater / WarpedMask, or None
    grid: Grid
    checked: dict[str, Any]
    work: Path
    outdir: Path
    config: FloodConfig
    sam_model: Any
    started: float


def _map_dates(req: _Request):
    """Both dates through ``segment`` (BEFORE with AFTER's method and decoder); returns
    (AFTER's result, BEFORE's result or None, the "before" water source on AFTER's grid)."""
    from geofloodsam.segmentation.pipeline import segment

    mapping = req.config.mapping
    first = segment(req.after, req.prompts, req.work / "after", mapping,
                    sam_model=req.sam_model)
    if req.before is None:
        return first, None, req.reference
    chose = first.record["method"] or {}
    if mapping.method == "auto" and chose.get("method"):
        mapping = dataclasses.replace(mapping, method=chose["method"])
    if mapping.decoder is None and chose.get("decoder"):
        mapping = dataclasses.replace(mapping, decoder=chose["decoder"])
    second = segment(req.before, req.before_prompts, req.work / "before", mapping,
                     sam_model=req.sam_model)
    return first, second, WarpedMask(second.mask_path, req.grid, what="BEFORE")


def _combine(req: _Request, after_mask: Path, source) -> tuple[Path, ClassTally, dict, dict]:
    """The class COG (in the work folder), its tally, the change rule's and the alignment's
    records."""
    rule, change_record = None, {"used": "water", "why": "a reference water layer"}
    try:
        if req.before is not None:
            rule, change_record = logratio.choose(
                req.config.change, req.after, req.before, req.grid, req.checked
            )
        tally = ClassTally(req.grid)
        cog = write_classes(req.grid, _strips(req.grid, after_mask, source, rule), req.work,
                            tally)
        alignment = source.record()
        if req.before is not None:  # the mask read is a work file: name the scene it maps
            alignment["source"] = f"BEFORE's water mask ({req.before.resolve()})"
    finally:
        if source is not req.reference:
            source.close()
        if rule is not None:
            rule.close()
    return cog, tally, change_record, alignment


def _run(req: _Request) -> FloodResult:
    first, second, source = _map_dates(req)
    cog, tally, change_record, alignment = _combine(req, first.mask_path, source)
    gpkg_tmp = req.work / "change.gpkg"
    polygons = write_class_polygons(tally, gpkg_tmp, _model_label(first.record),
                                    req.config.min_area, req.config.simplify)
    final = output_paths(req.outdir, req.after.stem)
    grid = req.grid
    record = {
        "geofloodsam_version": __version__,
        "command": "flood",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "grid": {"crs": grid.crs.to_string(), "transform": list(grid.transform)[:6],
                 "width": grid.width, "height": grid.height, "of": "AFTER"},
        "classes_legend": {"0": "dry", "1": "flood", "2": "permanent_water", "3": "receded",
                           "255": "nodata"},
        "classes": tally.record(),
        "polygons": polygons,
        "change": change_record,
        "before_source": "scene" if req.before is not None else "reference",
        "alignment": alignment,
        "sensors": {k: v for k, v in req.checked.items() if v is not None},
        "after": _scene_record(first),
        **({} if second is None else {"before": _scene_record(second)}),
        "timings": {"total_s": round(time.perf_counter() - req.started, 4)},
        "outputs": {k: final[k].name for k in ("classes", "style", "gpkg", "run")},
    }
    moves = [(cog, final["classes"]),
             (write_classes_qml(req.work / "change.qml"), final["style"]),
             (gpkg_tmp, final["gpkg"])]
    water = {}
    if req.config.save_water:
        for key, result in (("after", first), ("before", second)):
            if result is not None:
                water[key] = final[f"water_{key}"]
                moves.append((result.mask_path, water[key]))
        record["outputs"].update({f"water_{k}": p.name for k, p in water.items()})
    run_tmp = req.work / "change_run.json"
    run_tmp.write_text(json.dumps(record, indent=2) + "\n")
    moves.append((run_tmp, final["run"]))
    replace_all(moves)
    return FloodResult(final["classes"], final["style"], final["gpkg"], final["run"], water,
                       record)


def _model_label(record: dict[str, Any]) -> str:
    model = record.get("model") or {}
    method = (record.get("method") or {}).get("method", "sam")
    label = f"{model.get('model', '?')}:{model.get('decoder', 'pretrained')}"
    return "index" if method == "index" else label if method == "sam" else f"{label}+{method}"
