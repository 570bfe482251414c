"""What the Processing algorithms do, without QGIS: build the CLI call, run it, place outputs.

``segment`` writes ``<stem>_mask.tif``, ``<stem>_mask.qml`` and ``<stem>_flood.gpkg`` into
``-o OUTDIR``; :func:`segment_to` runs it into a hidden work folder beside the chosen mask
path and moves the results to the paths the user chose (the style beside the mask), so a
failed or cancelled run leaves nothing behind. :func:`flood_to` does the same for ``flood``
(``<stem>_change.tif``, ``.qml``, ``<stem>_change.gpkg`` with the layers flood,
permanent_water and receded) for the inputs of a :class:`FloodJob`. Standard library only
(runs in QGIS's Python).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import ENV_FILE, RunError, child_env, run

#: the menus (``--sensor``, ``--method``, ``--sar-units``) when the geofloodsam to call cannot
#: say its choices: ``auto`` alone (the sensor detected, the method chosen by it)
AUTO_ONLY = {"sensor": ("auto",), "method": ("auto",), "sar_units": ("auto",)}
#: seconds to wait for ``geofloodsam qgis choices``
CHOICES_TIMEOUT_S = 60
_menus: dict[str, tuple[str, ...]] | None = None
MASK_SUFFIXES = (".tif", ".tiff")
POLYGON_SUFFIXES = (".gpkg",)
#: segment options -> CLI flags
SEGMENT_FLAGS = {
    "decoder": "--decoder",
    "sensor": "--sensor",
    "method": "--method",
    "sar_units": "--sar-units",
    "bands": "--bands",
    "tile_size": "--tile-size",
    "overlap": "--overlap",
    "threshold": "--threshold",
    "min_area": "--min-area",
    "device": "--device",
}
#: segment switches (True: the flag is given) -> CLI flags
SEGMENT_SWITCHES = {"clicked_only": "--clicked-only"}
#: flood options -> CLI flags (on top of segment's, less min_area's meaning: class polygons)
FLOOD_FLAGS = {
    **SEGMENT_FLAGS,
    "reference_min": "--reference-min",
    "change": "--change",
}
#: the class polygon layers ``flood`` writes, in order
FLOOD_LAYERS = ("flood", "permanent_water", "receded")
CHANGES = ("auto", "water", "log-ratio")


@contextlib.contextmanager
def work_folder(beside: str | Path) -> Iterator[Path]:
    """A hidden temporary folder in the folder of ``beside`` (created), removed afterwards."""
    parent = Path(beside).absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=".geofloodsam-qgis-", dir=parent))
    except OSError as exc:
        raise RunError(f"cannot write to {parent} ({exc.strerror or exc}): choose another "
                       "output folder.") from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_choices(record: Any) -> dict[str, tuple[str, ...]] | None:
    """``{"sensor": [...], "method": [...], "sar_units": [...]}`` as tuples, or None."""
    if not isinstance(record, dict):
        return None
    try:
        out = {key: tuple(str(c) for c in record[key]) for key in AUTO_ONLY}
    except (KeyError, TypeError):
        return None
    return out if all(out.values()) else None


def recorded_choices(env_file: Path = ENV_FILE) -> dict[str, tuple[str, ...]] | None:
    """The choices ``geofloodsam qgis install`` recorded in ``geofloodsam_env.json`` (from
    geofloodsam's sensor registry and method list), or None."""
    try:
        record = json.loads(Path(env_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return _as_choices(record.get("choices") if isinstance(record, dict) else None)


def asked_choices(cmd: list[str]) -> dict[str, tuple[str, ...]] | None:
    """The choices ``geofloodsam qgis choices`` prints (one JSON line), or None if it fails."""
    try:
        done = subprocess.run([*cmd, "qgis", "choices"], capture_output=True, text=True,
                              env=child_env(), timeout=CHOICES_TIMEOUT_S)
        return _as_choices(json.loads(done.stdout)) if done.returncode == 0 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def menu_choices(command: Callable[[], list[str]] | None = None,
                 env_file: Path = ENV_FILE) -> dict[str, tuple[str, ...]]:
    """The algorithms' menus: geofloodsam's own choices, never a copy kept here.

    In order: recorded at install (:func:`recorded_choices`), asked from ``command()``
    (:func:`asked_choices`; an environment set up without ``geofloodsam qgis install``),
    else :data:`AUTO_ONLY`. Found once per QGIS session (menus and runs see the same list).
    """
    global _menus
    if _menus is None:
        found = recorded_choices(env_file)
        if found is None and command is not None:
            try:
                found = asked_choices(command())
            except RunError:
                found = None
        _menus = found or AUTO_ONLY
    return _menus


def _check_suffix(path: Path, allowed: tuple[str, ...], what: str) -> None:
    if path.suffix.lower() not in allowed:
        raise RunError(f"{what} must be a {' or '.join(allowed)} file, got {path.name}.")


def segment_args(
    scene: str | Path, outdir: str | Path, prompts: str | Path | None, options: dict[str, Any]
) -> list[str]:
    """The ``segment`` arguments for ``scene`` into ``outdir`` with ``options``."""
    args = ["segment", str(scene), "-o", str(outdir)]
    if prompts is not None:
        args += ["--prompts", str(prompts)]
    for key, value in options.items():
        if key in SEGMENT_SWITCHES:
            args += [SEGMENT_SWITCHES[key]] if value else []
            continue
        if key not in SEGMENT_FLAGS:
            raise ValueError(f"unknown segment option {key!r}")
        if value is None or value == "":
            continue
        args += [SEGMENT_FLAGS[key], str(value)]
    return args


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError:  # another file system
        tmp = dst.with_name(f".{dst.name}.geofloodsam-tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def segment_to(
    command: list[str],
    scene: str | Path,
    out_mask: str | Path,
    out_polygons: str | Path,
    workdir: str | Path,
    prompts: str | Path | None = None,
    options: dict[str, Any] | None = None,
    **callbacks: Callable,
) -> dict[str, str]:
    """Segment ``scene`` in ``workdir``; move the mask, its style and polygons into place.

    ``callbacks`` go to :func:`~geofloodsam.qgis.plugin.runner.run`. Returns the paths
    ``{"mask", "style", "polygons"}``.
    """
    out_mask, out_polygons, workdir = Path(out_mask), Path(out_polygons), Path(workdir)
    _check_suffix(out_mask, MASK_SUFFIXES, "OUTPUT_MASK")
    _check_suffix(out_polygons, POLYGON_SUFFIXES, "OUTPUT_POLYGONS")
    if not Path(scene).is_file():
        raise RunError(f"INPUT {scene} is not a raster file on disk.")
    on_message = callbacks.get("on_message")
    if on_message is not None:  # the CLI names the work folder; the user knows the outputs'
        callbacks["on_message"] = lambda line: on_message(
            line.replace(str(workdir), str(out_mask.parent)))
    run(command, segment_args(scene, workdir, prompts, options or {}), **callbacks)
    stem = Path(scene).stem
    made = {
        "mask": workdir / f"{stem}_mask.tif",
        "style": workdir / f"{stem}_mask.qml",
        "polygons": workdir / f"{stem}_flood.gpkg",
    }
    missing = [p.name for p in made.values() if not p.is_file()]
    if missing:
        raise RunError(f"geofloodsam segment finished but wrote no {', '.join(missing)}.")
    final = {
        "mask": out_mask,
        "style": out_mask.with_suffix(".qml"),
        "polygons": out_polygons,
    }
    for key in ("polygons", "style", "mask"):  # the mask last: it is what a reader looks for
        _move(made[key], final[key])
    return {k: str(v) for k, v in final.items()}


def flood_args(
    after: str | Path, outdir: str | Path, before: str | Path | None = None,
    reference_water: str | Path | None = None, prompts: str | Path | None = None,
    before_prompts: str | Path | None = None, options: dict[str, Any] | None = None,
    allow_mixed_sensors: bool = False,
) -> list[str]:
    """The ``flood`` arguments for ``after`` into ``outdir``."""
    args = ["flood", str(after), "-o", str(outdir)]
    for flag, value in (("--before", before), ("--reference-water", reference_water),
                        ("--prompts", prompts), ("--before-prompts", before_prompts)):
        if value is not None and value != "":
            args += [flag, str(value)]
    for key, value in (options or {}).items():
        if key not in FLOOD_FLAGS:
            raise ValueError(f"unknown flood option {key!r}")
        if value is None or value == "":
            continue
        args += [FLOOD_FLAGS[key], str(value)]
    if allow_mixed_sensors:
        args.append("--allow-mixed-sensors")
    return args


@dataclass(frozen=True)
class FloodJob:
    """The inputs of one ``flood`` run, as the Flood algorithm gathers them: the AFTER
    raster, the output paths the user chose, either ``before`` (a raster) or
    ``reference_water`` (a water raster or polygons file), the prompt files of each scene
    (None: promptless), the CLI ``options`` (:data:`FLOOD_FLAGS` keys) and whether a radar
    scene may be compared with an optical one."""

    after: str | Path
    out_classes: str | Path
    out_polygons: str | Path
    before: str | Path | None = None
    reference_water: str | Path | None = None
    prompts: str | Path | None = None
    before_prompts: str | Path | None = None
    options: dict[str, Any] | None = None
    allow_mixed_sensors: bool = False


def flood_to(
    command: list[str], job: FloodJob, workdir: str | Path, **callbacks: Callable
) -> dict[str, str]:
    """Run ``flood`` for ``job`` in ``workdir``; move the class raster, its style and the class
    polygons into place. ``callbacks`` go to :func:`~geofloodsam.qgis.plugin.runner.run`.
    Returns the paths ``{"classes", "style", "polygons", "run"}``."""
    after, before, reference_water = job.after, job.before, job.reference_water
    out_classes, out_polygons = Path(job.out_classes), Path(job.out_polygons)
    workdir = Path(workdir)
    _check_suffix(out_classes, MASK_SUFFIXES, "OUTPUT_CLASSES")
    _check_suffix(out_polygons, POLYGON_SUFFIXES, "OUTPUT_POLYGONS")
    if not Path(after).is_file():
        raise RunError(f"AFTER {after} is not a raster file on disk.")
    if (before is None) == (reference_water is None):
        raise RunError("give either BEFORE (a raster) or REFERENCE_WATER (a water raster or "
                       "polygons file), exactly one of them.")
    on_message = callbacks.get("on_message")
    if on_message is not None:
        callbacks["on_message"] = lambda line: on_message(
            line.replace(str(workdir), str(out_classes.parent)))
    run(command, flood_args(after, workdir, before, reference_water, job.prompts,
                            job.before_prompts, job.options, job.allow_mixed_sensors),
        **callbacks)
    stem = Path(after).stem
    made = {
        "classes": workdir / f"{stem}_change.tif",
        "style": workdir / f"{stem}_change.qml",
        "polygons": workdir / f"{stem}_change.gpkg",
        "run": workdir / f"{stem}_change_run.json",
    }
    missing = [p.name for p in made.values() if not p.is_file()]
    if missing:
        raise RunError(f"geofloodsam flood finished but wrote no {', '.join(missing)}.")
    final = {
        "classes": out_classes,
        "style": out_classes.with_suffix(".qml"),
        "polygons": out_polygons,
        "run": out_classes.with_name(f"{out_classes.stem}_run.json"),
    }
    for key in ("polygons", "run", "style", "classes"):  # the raster last
        _move(made[key], final[key])
    return {k: str(v) for k, v in final.items()}


def evaluate_to(
    command: list[str],
    prediction: str | Path,
    truth: str | Path,
    out_dir: str | Path,
    **callbacks: Callable,
) -> dict[str, float]:
    """Score ``prediction`` against ``truth`` into ``out_dir``; return metrics.csv's figures."""
    for what, path in (("PREDICTION", prediction), ("TRUTH", truth)):
        if not Path(path).is_file():
            raise RunError(f"{what} {path} is not a raster file on disk.")
    run(command, ["evaluate-raster", str(prediction), str(truth), "-o", str(out_dir)],
        **callbacks)
    with open(Path(out_dir) / "metrics.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    out = {}
    for key, value in row.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out
