"""Score a georeferenced water mask against a ground-truth raster (``geofloodsam evaluate-raster``).

The prediction (e.g. the output of ``segment``: 1 water, 0 dry, 255 nodata) defines the
grid. The truth is aligned to it through a GDAL warped VRT with nearest-neighbour resampling
(any CRS, resolution or extent), and confusion counts and water areas are accumulated row strip
by row strip, so neither raster is ever read whole. Pixels are scored only where both rasters
have data; prediction pixels outside the truth's extent are excluded.

Areas are in m², geodesic (:mod:`geofloodsam.geo.area`, the convention of every output): the
same mask gives the same water area here as in ``segment``'s ``run.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geofloodsam.errors import GeofloodsamError
from geofloodsam.evaluation import report
from geofloodsam.evaluation.metrics import Confusion, confusion
from geofloodsam.geo.area import row_pixel_areas
from geofloodsam.raster.strips import row_strips, strip_rows

PRED_DRY, PRED_WATER, PRED_NODATA = 0, 1, 255


@dataclass
class RasterScore:
    """Confusion counts and areas (m²) of a prediction against its truth, on the prediction grid."""

    tp: int
    fp: int
    fn: int
    tn: int
    pred_water_m2: float  # predicted water where both rasters have data
    truth_water_m2: float  # true water where both rasters have data
    overlap_water_m2: float  # water in both (true positives)
    evaluated_m2: float  # area where both rasters have data
    excluded_pixels: int  # prediction pixels without data in either raster
    crs: str
    resampled: bool  # whether the truth had to be warped onto the prediction grid

    @property
    def confusion(self) -> Confusion:
        """The counts as a :class:`~geofloodsam.evaluation.metrics.Confusion`."""
        return Confusion(self.tp, self.fp, self.fn, self.tn)


def _open(path: str | Path, what: str):
    import rasterio

    path = Path(path)
    if not path.is_file():
        raise GeofloodsamError(f"{what} raster {path} does not exist: give a GeoTIFF file.")
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioError as exc:
        raise GeofloodsamError(
            f"cannot read {what} raster {path} ({str(exc).splitlines()[0][:120]}): give a "
            "GeoTIFF (or another GDAL raster) file."
        ) from None
    if ds.crs is None:
        ds.close()
        raise GeofloodsamError(
            f"{what} raster {path} has no CRS: it cannot be aligned; georeference it first "
            "(e.g. gdal_edit.py -a_srs EPSG:XXXX)."
        )
    return ds


def _check_overlap(pred, truth, pred_path, truth_path) -> None:
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(truth.crs, pred.crs, *truth.bounds)
    except Exception:  # noqa: BLE001 - not transformable here: rely on the valid-pixel count
        return
    if not np.all(np.isfinite([left, bottom, right, top])):
        return
    p = pred.bounds
    if left >= p.right or right <= p.left or bottom >= p.top or top <= p.bottom:
        raise GeofloodsamError(
            f"truth {Path(truth_path).name} and prediction {Path(pred_path).name} do not "
            "overlap: give a ground truth of the same area."
        )


def _windows(height: int, width: int):
    from rasterio.windows import Window

    for y0, y1 in row_strips(height, strip_rows(width)):
        yield Window(0, y0, width, y1 - y0)


def evaluate_raster(
    pred_path: str | Path,
    truth_path: str | Path,
    truth_water_values: Sequence[float] = (1,),
    truth_nodata: float | None = None,
    tolerance: float = 0.125,
    progress: bool = False,
) -> RasterScore:
    """Confusion counts and water areas of prediction ``pred_path`` against ``truth_path``.

    Args:
        pred_path: water mask, band 1: 1 water, 0 dry, 255 (or its nodata / mask) no data.
        truth_path: ground truth, band 1: ``truth_water_values`` are water, everything else
            dry, except ``truth_nodata`` (default: the raster's nodata), NaN and pixels
            masked in the raster, which are excluded.
        tolerance: GDAL warper approximation error in pixels when the grids differ
            (gdalwarp's default 0.125; a tiny value such as 1e-9 transforms every pixel
            exactly; 0 is taken as 1e-9, as rasterio's WarpedVRT fails on 0 with a target grid).
        progress: show a progress bar.
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from geofloodsam.progress import tqdm_auto as tqdm

    water_values = np.asarray(list(truth_water_values), dtype=np.float64)
    if water_values.size == 0:
        raise GeofloodsamError("no truth water value given: use e.g. --truth-water-values 1.")
    with _open(pred_path, "prediction") as pred, _open(truth_path, "truth") as truth:
        _check_overlap(pred, truth, pred_path, truth_path)
        nodata = truth.nodata if truth_nodata is None else truth_nodata
        same_grid = (
            truth.crs == pred.crs
            and truth.transform.almost_equals(pred.transform)
            and truth.shape == pred.shape
        )
        vrt_options = {
            "crs": pred.crs,
            "transform": pred.transform,
            "width": pred.width,
            "height": pred.height,
            "resampling": Resampling.nearest,
            "add_alpha": True,
            "tolerance": max(float(tolerance), 1e-9),
        }
        if nodata is not None:
            vrt_options["src_nodata"] = nodata
        areas = row_pixel_areas(pred.transform, pred.crs, pred.width, 0, pred.height)
        counts = Confusion()
        sums = np.zeros(4)  # pred water, truth water, overlap, evaluated (m²)
        n_valid = 0
        with WarpedVRT(truth, **vrt_options) as aligned:
            windows = list(_windows(pred.height, pred.width))
            for win in tqdm(windows, desc="evaluating", unit="strip", disable=not progress):
                pv = pred.read(1, window=win)
                p_ok = (pred.read_masks(1, window=win) > 0) & (pv != PRED_NODATA)
                odd = p_ok & (pv != PRED_WATER) & (pv != PRED_DRY)
                if odd.any():
                    raise GeofloodsamError(
                        f"prediction {Path(pred_path).name} has value {pv[odd][0]}: expected 1 "
                        "water, 0 dry, 255 nodata; give a mask written by `geofloodsam segment`."
                    )
                tv = aligned.read(1, window=win).astype(np.float64)
                t_ok = (aligned.read_masks(1, window=win) > 0) & ~np.isnan(tv)
                if nodata is not None:
                    t_ok &= tv != nodata
                valid = p_ok & t_ok
                pw = (pv == PRED_WATER) & valid
                tw = np.isin(tv, water_values) & valid
                counts = counts + confusion(pw, tw, valid)
                n_valid += int(np.count_nonzero(valid))
                a = areas[win.row_off : win.row_off + win.height]
                for i, m in enumerate((pw, tw, pw & tw, valid)):
                    sums[i] += float(np.count_nonzero(m, axis=1) @ a)
        if n_valid == 0:
            raise GeofloodsamError(
                f"no pixel has data in both {Path(pred_path).name} and {Path(truth_path).name} "
                "(they do not overlap, or one is all nodata): give a truth of the same area."
            )
        return RasterScore(
            *(int(v) for v in (counts.tp, counts.fp, counts.fn, counts.tn)),
            pred_water_m2=float(sums[0]),
            truth_water_m2=float(sums[1]),
            overlap_water_m2=float(sums[2]),
            evaluated_m2=float(sums[3]),
            excluded_pixels=int(pred.width * pred.height - n_valid),
            crs=str(pred.crs),
            resampled=not same_grid,
        )


def metrics_table(score: RasterScore, name: str) -> pd.DataFrame:
    """One ``metrics.csv`` row: the common leading columns, then counts and areas."""
    row = {"model": name, "prompt": "", "n_images": 1, **score.confusion.scores()}
    row.update({k: v for k, v in asdict(score).items() if k not in ("crs", "resampled")})
    return pd.DataFrame([row])


def raster_markdown(score: RasterScore, table: pd.DataFrame, pred_path, truth_path) -> str:
    """The text of ``report.md`` for a raster evaluation."""
    areas = pd.DataFrame(
        [
            {
                "what": label,
                "m2": getattr(score, key),
                "km2": getattr(score, key) / 1e6,
            }
            for label, key in (
                ("predicted water", "pred_water_m2"),
                ("true water", "truth_water_m2"),
                ("water in both", "overlap_water_m2"),
                ("evaluated area", "evaluated_m2"),
            )
        ]
    )
    area_lines = ["| | m² | km² |", "| --- | ---: | ---: |"] + [
        f"| {r.what} | {r.m2:,.0f} | {r.km2:.4f} |" for r in areas.itertuples()
    ]
    return "\n".join(
        [
            "# Raster evaluation report",
            "",
            f"- **prediction**: `{pred_path}` (grid of the evaluation, {score.crs})",
            f"- **truth**: `{truth_path}`"
            + (" (warped onto the prediction grid, nearest neighbour)" if score.resampled else ""),
            f"- **pixels without data in either raster (excluded)**: {score.excluded_pixels:,}",
            "",
            "## Scores",
            "",
            report.markdown_table(table, {"model": "Prediction", **report.METRIC_TITLES}),
            "",
            f"Counts: TP {score.tp:,}, FP {score.fp:,}, FN {score.fn:,}, TN {score.tn:,}.",
            "",
            "## Water areas (where both rasters have data)",
            "",
            *area_lines,
            "",
        ]
    )


def write_raster_report(
    score: RasterScore, out_dir: str | Path, pred_path: str | Path, truth_path: str | Path
) -> pd.DataFrame:
    """Write ``metrics.csv`` and ``report.md`` into ``out_dir`` (atomically); returns the table."""
    table = metrics_table(score, Path(pred_path).stem)
    with report.atomic_outputs(out_dir) as tmp:
        report.write_csv(table, tmp / "metrics.csv")
        (tmp / "report.md").write_text(
            raster_markdown(score, table, pred_path, truth_path), encoding="utf-8"
        )
    return table


# --------------------------------------------------------------------------- class rasters
@dataclass
class ClassScore:
    """One class of a class raster scored against a class truth (the pixels of that class
    against the truth's pixels of that class, where both rasters have data)."""

    value: int
    name: str
    tp: int
    fp: int
    fn: int
    tn: int
    pred_m2: float
    truth_m2: float

    @property
    def confusion(self) -> Confusion:
        """The counts as a :class:`~geofloodsam.evaluation.metrics.Confusion`."""
        return Confusion(self.tp, self.fp, self.fn, self.tn)


def evaluate_classes(
    pred_path: str | Path,
    truth_path: str | Path,
    classes: Sequence[int] = (1, 2, 3),
    tolerance: float = 0.125,
    progress: bool = False,
) -> list[ClassScore]:
    """Score each of ``classes`` of a class raster (``flood``'s: 1 flood, 2 permanent water,
    3 receded, 0 dry, 255 nodata) against a class truth with the same codes.

    The truth is warped onto the prediction's grid (nearest), both are read row strip by row
    strip; pixels that are nodata (255, the raster's nodata or masked) in either are excluded.
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from geofloodsam.progress import tqdm_auto as tqdm
    from geofloodsam.qgis.style import CHANGE_CLASSES, CHANGE_NODATA

    with _open(pred_path, "prediction") as pred, _open(truth_path, "truth") as truth:
        _check_overlap(pred, truth, pred_path, truth_path)
        options = {"crs": pred.crs, "transform": pred.transform, "width": pred.width,
                   "height": pred.height, "resampling": Resampling.nearest, "add_alpha": True,
                   "tolerance": max(float(tolerance), 1e-9)}
        if truth.nodata is not None:
            options["src_nodata"] = truth.nodata
        areas = row_pixel_areas(pred.transform, pred.crs, pred.width, 0, pred.height)
        counts = {c: Confusion() for c in classes}
        sums = {c: np.zeros(2) for c in classes}
        n_valid = 0
        with WarpedVRT(truth, **options) as aligned:
            windows = list(_windows(pred.height, pred.width))
            for win in tqdm(windows, desc="evaluating", unit="strip", disable=not progress):
                pv = pred.read(1, window=win)
                tv = aligned.read(1, window=win)
                valid = (pred.read_masks(1, window=win) > 0) & (pv != CHANGE_NODATA)
                valid &= (aligned.read_masks(1, window=win) > 0) & (tv != CHANGE_NODATA)
                n_valid += int(np.count_nonzero(valid))
                a = areas[win.row_off : win.row_off + win.height]
                for c in classes:
                    p, t = (pv == c) & valid, (tv == c) & valid
                    counts[c] = counts[c] + confusion(p, t, valid)
                    sums[c] += [float(np.count_nonzero(p, axis=1) @ a),
                                float(np.count_nonzero(t, axis=1) @ a)]
        if n_valid == 0:
            raise GeofloodsamError(
                f"no pixel has data in both {Path(pred_path).name} and {Path(truth_path).name}: "
                "give a class truth of the same area."
            )
    return [
        ClassScore(int(c), CHANGE_CLASSES.get(int(c), (f"class {c}",))[0], counts[c].tp,
                   counts[c].fp, counts[c].fn, counts[c].tn, float(sums[c][0]),
                   float(sums[c][1]))
        for c in classes
    ]


def class_table(scores: Sequence[ClassScore], name: str) -> pd.DataFrame:
    """``metrics.csv`` of a class evaluation: one row per class."""
    rows = []
    for s in scores:
        row = {"model": name, "class": s.name, "value": s.value, **s.confusion.scores()}
        row.update({k: v for k, v in asdict(s).items() if k not in ("name", "value")})
        rows.append(row)
    return pd.DataFrame(rows)


def write_class_report(
    scores: Sequence[ClassScore], out_dir: str | Path, pred_path: str | Path,
    truth_path: str | Path,
) -> pd.DataFrame:
    """Write ``metrics.csv`` and ``report.md`` (one row per class) atomically; return the table."""
    table = class_table(scores, Path(pred_path).stem)
    lines = ["| class | value | IoU | Dice | Precision | Recall | predicted km² | true km² |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['class']} | {r['value']} | {r['iou']:.4f} | {r['dice']:.4f} | "
              f"{r['precision']:.4f} | {r['recall']:.4f} | {r['pred_m2'] / 1e6:.4f} | "
              f"{r['truth_m2'] / 1e6:.4f} |" for r in table.to_dict("records")]
    text = "\n".join(["# Class raster evaluation report", "",
                      f"- **prediction**: `{pred_path}`", f"- **truth**: `{truth_path}`", "",
                      *lines, ""])
    with report.atomic_outputs(out_dir) as tmp:
        report.write_csv(table, tmp / "metrics.csv")
        (tmp / "report.md").write_text(text, encoding="utf-8")
    return table
