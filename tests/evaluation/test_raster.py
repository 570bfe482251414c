"""``geofloodsam evaluate-raster``: a georeferenced mask against a truth raster on another grid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from pyproj import Transformer

from geofloodsam.cli import main
from geofloodsam.evaluation import raster as er
from geofloodsam.evaluation.report import HEAD_COLUMNS
from geofloodsam.raster import strips

UTM = "EPSG:32633"
X0, Y0 = 500000.0, 5000000.0


def from_origin(west: float, north: float, xres: float, yres: float) -> Affine:
    """A north-up transform (rasterio's helper warns about Affine's ``*`` operator)."""
    return Affine(xres, 0.0, west, 0.0, -yres, north)


def write(path: Path, data: np.ndarray, crs, transform, nodata=None) -> Path:
    """A single-band GeoTIFF."""
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as ds:
        ds.write(data, 1)
    return path


# ---------------------------------------------------------------------------- same CRS, 2x coarser
def _pred_10m(tmp_path: Path) -> Path:
    """30x20 pixels of 10 m: water rows 4-11 x cols 6-17 (96 px), row 19 nodata (255)."""
    pred = np.zeros((20, 30), np.uint8)
    pred[4:12, 6:18] = 1
    pred[19] = 255
    return write(tmp_path / "pred.tif", pred, UTM, from_origin(X0, Y0, 10, 10))


def _truth_20m(tmp_path: Path, declare_nodata: bool) -> Path:
    """15x9 cells of 20 m (the prediction's rows 0-17): water cells rows 2-5 x cols 4-9,
    i.e. prediction rows 4-11 x cols 8-19, half of them coded 2; cell (0, 0) nodata (9)."""
    truth = np.zeros((9, 15), np.uint8)
    truth[2:6, 4:10] = 1
    truth[2:4, 4:10] = 2
    truth[0, 0] = 9
    return write(tmp_path / "truth.tif", truth, UTM, from_origin(X0, Y0, 20, 20),
                 nodata=9 if declare_nodata else None)


# By hand, on the prediction grid (600 px of 100 m²):
#   water pred rows 4-11 x cols 6-17, truth rows 4-11 x cols 8-19
#   TP = 8 x 10 = 80, FP = 8 x 2 = 16, FN = 8 x 2 = 16
#   excluded: row 19 (pred nodata, 30) + row 18 (outside the truth, 30) + 2x2 truth nodata = 64
#   TN = 600 - 64 - 80 - 16 - 16 = 424
# Areas are geodesic (geofloodsam.geo.area): on UTM's central meridian the grid is scaled
# by k0 = 0.9996, so a 10 m grid cell covers 100 / 0.9996² m² of the ellipsoid.
PIXEL_M2 = 100.0 / 0.9996**2
HAND = {"tp": 80, "fp": 16, "fn": 16, "tn": 424, "excluded_pixels": 64,
        "pred_water_m2": 96 * PIXEL_M2, "truth_water_m2": 96 * PIXEL_M2,
        "overlap_water_m2": 80 * PIXEL_M2, "evaluated_m2": 536 * PIXEL_M2}


@pytest.mark.parametrize("declare_nodata", [True, False])
@pytest.mark.parametrize("strip_pixels", [strips.STRIP_PIXELS, 60])  # whole, or 2-row strips
def test_coarser_truth_same_crs_by_hand(tmp_path, monkeypatch, declare_nodata, strip_pixels):
    monkeypatch.setattr(strips, "STRIP_PIXELS", strip_pixels)
    pred, truth = _pred_10m(tmp_path), _truth_20m(tmp_path, declare_nodata)
    score = er.evaluate_raster(pred, truth, (1, 2), truth_nodata=None if declare_nodata else 9)
    assert {k: getattr(score, k) for k in HAND} == pytest.approx(HAND, rel=1e-6)
    assert score.confusion.scores() == pytest.approx(
        {"iou": 80 / 112, "dice": 160 / 192, "precision": 80 / 96, "recall": 80 / 96}
    )
    assert score.resampled


def test_water_values_select_truth_classes(tmp_path):
    pred, truth = _pred_10m(tmp_path), _truth_20m(tmp_path, True)
    score = er.evaluate_raster(pred, truth, (1,))  # only the lower half (rows 8-11) is water
    assert (score.tp, score.fn) == (40, 8)
    assert score.truth_water_m2 == pytest.approx(48 * PIXEL_M2, rel=1e-6)


# ---------------------------------------------------------------------------- other CRS
def test_geographic_coarser_truth_matches_pixel_centre_lookup(tmp_path):
    """Truth in EPSG:4326 at ~22 x 16 m over the water square of a 10 m UTM prediction."""
    pred = np.zeros((80, 80), np.uint8)
    pred[20:60, 20:60] = 1  # x 500200-500600, y 4999200-4999600
    pred_path = write(tmp_path / "pred.tif", pred, UTM, from_origin(X0, Y0, 10, 10))

    to_geo = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    lon0, lat1 = to_geo.transform(X0 - 50, Y0 + 50)
    lon1, lat0 = to_geo.transform(X0 + 850, Y0 - 850)
    step = 0.0002
    ncol, nrow = math.ceil((lon1 - lon0) / step), math.ceil((lat1 - lat0) / step)
    # truth water: cells whose centre falls inside the prediction's water square
    lons = lon0 + (np.arange(ncol) + 0.5) * step
    lats = lat1 - (np.arange(nrow) + 0.5) * step
    cx, cy = to_utm.transform(*np.meshgrid(lons, lats))
    truth = ((cx > X0 + 200) & (cx < X0 + 600) & (cy > Y0 - 600) & (cy < Y0 - 200))
    truth_path = write(tmp_path / "truth.tif", truth.astype(np.uint8), "EPSG:4326",
                       from_origin(lon0, lat1, step, step))

    score = er.evaluate_raster(pred_path, truth_path, (1,), tolerance=0)

    # expected: look every prediction pixel centre up in the truth grid (no GDAL involved)
    px, py = np.meshgrid(X0 + (np.arange(80) + 0.5) * 10, Y0 - (np.arange(80) + 0.5) * 10)
    lon, lat = to_geo.transform(px, py)
    tw = truth[np.floor((lat1 - lat) / step).astype(int), np.floor((lon - lon0) / step).astype(int)]
    pw = pred == 1
    expected = {"tp": int((pw & tw).sum()), "fp": int((pw & ~tw).sum()),
                "fn": int((~pw & tw).sum()), "tn": int((~pw & ~tw).sum())}
    assert {k: getattr(score, k) for k in expected} == expected
    assert score.excluded_pixels == 0
    assert score.pred_water_m2 == pytest.approx(1600 * PIXEL_M2, rel=1e-6)
    assert score.truth_water_m2 == pytest.approx(PIXEL_M2 * tw.sum(), rel=1e-6)
    # the same square, seen through a coarser grid: only its rim of pixels can disagree
    assert score.confusion.scores()["iou"] > 0.9


def _quadrangle_area(lat0: float, lat1: float, dlon: float) -> float:
    """Area (m²) of a lat/lon cell on the WGS 84 ellipsoid (authalic formula, by hand)."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    e, b2 = math.sqrt(e2), (a * (1 - f)) ** 2

    def s(phi: float) -> float:
        sp = math.sin(math.radians(phi))
        return sp / (1 - e2 * sp * sp) + math.log((1 + e * sp) / (1 - e * sp)) / (2 * e)

    return b2 / 2 * math.radians(dlon) * (s(lat1) - s(lat0))


def test_geographic_prediction_areas_are_geodesic(tmp_path):
    step, lat_top, lon_left = 0.001, 60.05, 10.0
    pred = np.zeros((50, 40), np.uint8)
    pred[10:30, 5:25] = 1  # 20 x 20 cells of 0.001 degrees
    transform = from_origin(lon_left, lat_top, step, step)
    pred_path = write(tmp_path / "pred.tif", pred, "EPSG:4326", transform)
    truth_path = write(tmp_path / "truth.tif", pred.copy(), "EPSG:4326", transform)
    score = er.evaluate_raster(pred_path, truth_path)
    expected = _quadrangle_area(lat_top - 30 * step, lat_top - 10 * step, 20 * step)
    assert score.pred_water_m2 == pytest.approx(expected, rel=1e-6)
    assert score.truth_water_m2 == pytest.approx(expected, rel=1e-6)
    assert score.evaluated_m2 == pytest.approx(_quadrangle_area(lat_top - 50 * step, lat_top,
                                                                40 * step), rel=1e-6)
    assert score.confusion.scores()["iou"] == 1.0
    assert not score.resampled


# ---------------------------------------------------------------------------- the command
def test_cli_writes_metrics_and_report(tmp_path):
    pred, truth = _pred_10m(tmp_path), _truth_20m(tmp_path, True)
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["evaluate-raster", str(pred), str(truth), "-q",
                                    "--truth-water-values", "1,2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "report.md"]
    table = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    assert tuple(table.columns[:7]) == HEAD_COLUMNS
    row = table.iloc[0]
    assert row["model"] == "pred" and row["n_images"] == 1
    assert row["iou"] == pytest.approx(80 / 112, abs=1e-6)
    assert row["truth_water_m2"] == pytest.approx(96 * PIXEL_M2, rel=1e-6)
    text = (out / "report.md").read_text()
    assert "| Prediction | IoU | Dice | Precision | Recall |" in text
    assert "| true water | 9,608 |" in text


def _bad_value(tmp_path):
    pred = np.zeros((20, 30), np.uint8)
    pred[3, 3] = 7
    return write(tmp_path / "odd.tif", pred, UTM, from_origin(X0, Y0, 10, 10))


def _no_crs(tmp_path):
    return write(tmp_path / "nocrs.tif", np.zeros((20, 30), np.uint8), None,
                 from_origin(X0, Y0, 10, 10))


def _far_away(tmp_path):
    return write(tmp_path / "far.tif", np.ones((9, 15), np.uint8), UTM,
                 from_origin(X0 + 50_000, Y0, 20, 20))


def _far_away_geographic(tmp_path):
    return write(tmp_path / "far4326.tif", np.ones((10, 10), np.uint8), "EPSG:4326",
                 from_origin(20.0, 50.0, 0.001, 0.001))


def _all_nodata(tmp_path):
    return write(tmp_path / "empty.tif", np.full((9, 15), 9, np.uint8), UTM,
                 from_origin(X0, Y0, 20, 20), nodata=9)


@pytest.mark.parametrize(
    ("which", "make", "message"),
    [
        ("pred", _no_crs, "has no CRS"),
        ("truth", _no_crs, "has no CRS"),
        ("truth", _far_away, "do not overlap"),
        ("truth", _far_away_geographic, "do not overlap"),
        ("truth", _all_nodata, "no pixel has data in both"),
        ("pred", _bad_value, "has value 7"),
        ("pred", lambda p: p / "missing.tif", "does not exist"),
        ("truth", lambda p: (p / "junk.tif").write_text("x") and p / "junk.tif", "cannot read"),
    ],
)
def test_bad_input_one_line_error_nothing_written(tmp_path, which, make, message):
    pred, truth = _pred_10m(tmp_path), _truth_20m(tmp_path, True)
    bad = make(tmp_path)
    args = [str(bad), str(truth)] if which == "pred" else [str(pred), str(bad)]
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["evaluate-raster", *args, "-q", "-o", str(out)])
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output
    assert not out.exists() and not list(tmp_path.glob(".report.*"))


def test_bad_water_values_option(tmp_path):
    pred, truth = _pred_10m(tmp_path), _truth_20m(tmp_path, True)
    res = CliRunner().invoke(main, ["evaluate-raster", str(pred), str(truth),
                                    "--truth-water-values", "water", "-o", str(tmp_path / "r")])
    assert res.exit_code != 0 and "comma-separated numbers" in res.output
    assert not (tmp_path / "r").exists()


def test_an_unwritable_output_is_found_before_evaluating(tmp_path, monkeypatch):
    pred, truth = _pred_10m(tmp_path), _truth_20m(tmp_path, True)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "report"  # a path through a file: it cannot be created

    def no_work(*a, **k):
        raise AssertionError("evaluated before checking -o")

    monkeypatch.setattr("geofloodsam.evaluation.raster.evaluate_raster", no_work)
    res = CliRunner().invoke(main, ["evaluate-raster", str(pred), str(truth), "-q", "-o", str(out)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "a_file" in lines[0], res.output
    assert blocker.read_text() == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------- class rasters
def _classes(tmp_path: Path, name: str, values: np.ndarray, res: float = 10) -> Path:
    return write(tmp_path / name, values.astype(np.uint8), UTM, from_origin(X0, Y0, res, res),
                 nodata=255)


def test_class_raster_is_scored_per_class_by_hand(tmp_path):
    """4x6 px: truth flood cols 0-1, permanent cols 2-3, receded col 4; the prediction moves
    one flood column into permanent and marks one receded pixel nodata."""
    truth = np.zeros((4, 6), np.uint8)
    truth[:, 0:2], truth[:, 2:4], truth[:, 4] = 1, 2, 3
    pred = truth.copy()
    pred[:, 1] = 2
    pred[0, 4] = 255
    scores = {s.name: s for s in er.evaluate_classes(_classes(tmp_path, "p.tif", pred),
                                                     _classes(tmp_path, "t.tif", truth))}
    flood, permanent, receded = scores["flood"], scores["permanent_water"], scores["receded"]
    assert (flood.tp, flood.fp, flood.fn) == (4, 0, 4)
    assert (permanent.tp, permanent.fp, permanent.fn) == (8, 4, 0)
    assert (receded.tp, receded.fp, receded.fn, receded.tn) == (3, 0, 0, 20)
    assert flood.confusion.scores()["iou"] == 0.5
    assert flood.truth_m2 == pytest.approx(8 * PIXEL_M2, rel=1e-6)


def test_cli_classes_writes_one_row_per_class(tmp_path):
    truth = np.zeros((8, 8), np.uint8)
    truth[:4, :4], truth[4:, 4:] = 1, 2
    coarse = np.zeros((4, 4), np.uint8)  # the same classes on a 2x coarser grid
    coarse[:2, :2], coarse[2:, 2:] = 1, 2
    out = tmp_path / "r"
    res = CliRunner().invoke(main, ["evaluate-raster", str(_classes(tmp_path, "p.tif", truth)),
                                    str(_classes(tmp_path, "t.tif", coarse, 20)), "--classes",
                                    "1,2,3", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "metrics.csv")
    assert list(table["class"]) == ["flood", "permanent_water", "receded"]
    assert list(table["iou"]) == [1.0, 1.0, 1.0]  # receded: empty in both, by convention 1
    assert "flood (1)  IoU 1.000" in res.output
    assert "| flood | 1 | 1.0000 |" in (out / "report.md").read_text()


def test_cli_classes_bad_values(tmp_path):
    p = _classes(tmp_path, "p.tif", np.zeros((4, 4)))
    res = CliRunner().invoke(main, ["evaluate-raster", str(p), str(p), "--classes", "flood",
                                    "-o", str(tmp_path / "r")])
    assert res.exit_code == 1 and "Error: --classes must be comma-separated numbers" in res.output
    assert not (tmp_path / "r").exists()
