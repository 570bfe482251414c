"""Planning a run (:mod:`geofloodsam.segmentation.plan`): every bad input is one line before
the model loads and leaves nothing; prompts are read into each scene's pixels; each plan names
the work function of its tiles.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from oracle_scenes import (
    ORIGIN,
    UTM,
    OracleModel,
    dark_scene,
    ellipse,
    leftovers,
    previous_outputs,
    read_mask,
    write_points,
    write_raster,
)
from rasterio.control import GroundControlPoint
from rasterio.transform import from_origin
from scipy.io import netcdf_file
from shapely.geometry import LineString, Point, Polygon

from geofloodsam.cli import main
from geofloodsam.errors import GeofloodsamError
from geofloodsam.geo.transforms import pixel_to_world
from geofloodsam.segmentation.pipeline import segment


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    w, h = 120, 100
    good = write_raster(tmp / "good.tif", dark_scene(w, h, ellipse(w, h, 60, 50, 30, 20)))
    pts = write_points(tmp / "pts.geojson", [(60.5, 50.5)])
    corrupt = tmp / "corrupt.tif"
    corrupt.write_text("not a tiff")
    nocrs = tmp / "nocrs.tif"
    with rasterio.open(nocrs, "w", driver="GTiff", width=w, height=h, count=3,
                       dtype="uint8") as ds:
        ds.write(np.zeros((3, h, w), np.uint8))
    nodata = write_raster(tmp / "nodata.tif", np.zeros((3, h, w), np.uint8), nodata=0)
    garbage = tmp / "garbage.geojson"
    garbage.write_text("{ this is not json")
    empty = tmp / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    shp = tmp / "nocrs.shp"
    gpd.GeoDataFrame(geometry=[Point(ORIGIN[0] + 600, ORIGIN[1] - 500)]).to_file(shp)
    line = tmp / "line.geojson"
    gpd.GeoDataFrame(geometry=[LineString([ORIGIN, (ORIGIN[0] + 500, ORIGIN[1] - 500)])],
                     crs=UTM).to_file(line)
    outside = write_points(tmp / "outside.geojson", [(-500, -500), (5000, 20)])
    a_file = tmp / "a_file.txt"
    a_file.write_text("x")
    no_transform = tmp / "no_transform.tif"  # a CRS but no geotransform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(no_transform, "w", driver="GTiff", width=w, height=h, count=3,
                           dtype="uint8", crs=UTM) as ds:
            ds.write(dark_scene(w, h, ellipse(w, h, 60, 50, 30, 20)))
        gcps = [GroundControlPoint(0, 0, *ORIGIN), GroundControlPoint(0, w, ORIGIN[0] + 1200,
                ORIGIN[1]), GroundControlPoint(h, 0, ORIGIN[0], ORIGIN[1] - 1000)]
        gcp_only = tmp / "gcp_only.tif"
        with rasterio.open(gcp_only, "w", driver="GTiff", width=w, height=h, count=3,
                           dtype="uint8", gcps=gcps, crs=UTM) as ds:
            ds.write(dark_scene(w, h, ellipse(w, h, 60, 50, 30, 20)))
    netcdf = tmp / "two_variables.nc"
    with netcdf_file(netcdf, "w") as f:
        f.createDimension("y", h)
        f.createDimension("x", w)
        for name in ("water", "depth"):
            f.createVariable(name, "f4", ("y", "x"))[:] = np.ones((h, w), np.float32)
    strip = write_raster(tmp / "strip.tif", dark_scene(w, 1, np.zeros((1, w), bool)))
    csv = tmp / "clicks.csv"
    csv.write_text(f"x,y,label\n{ORIGIN[0] + 600},{ORIGIN[1] - 500},1\n")
    two_layers = tmp / "two_layers.gpkg"
    for layer in ("clicks", "old_clicks"):
        gpd.GeoDataFrame(geometry=[Point(pixel_to_world(from_origin(*ORIGIN, 10.0, 10.0),
                         60.5, 50.5))], crs=UTM).to_file(two_layers, layer=layer)
    (x0, y0), (x1, _) = (pixel_to_world(from_origin(*ORIGIN, 10.0, 10.0), c, 50) for c in (40, 80))
    flat_box = tmp / "flat_box.geojson"
    gpd.GeoDataFrame(geometry=[Polygon([(x0, y0), (x1, y0), (x0, y0)])], crs=UTM).to_file(
        flat_box)
    p = ["--prompts", str(pts)]
    return {
        "missing raster": ([str(tmp / "nope.tif"), *p], "not found"),
        "corrupt raster": ([str(corrupt), *p], "cannot read"),
        "raster without CRS": ([str(nocrs), *p], "no CRS"),
        "unknown band": ([str(good), *p, "--bands", "5,3,2"], "band 5"),
        "all-nodata scene": ([str(nodata), *p], "nodata"),
        "all-nodata scene, promptless": ([str(nodata)], "nodata"),
        "unreadable vector": ([str(good), "--prompts", str(garbage)], "cannot read prompts"),
        "missing vector": ([str(good), "--prompts", str(tmp / "nope.geojson")], "not found"),
        "empty vector": ([str(good), "--prompts", str(empty)], "no features"),
        "vector without CRS": ([str(good), "--prompts", str(shp)], "no CRS"),
        "unsupported geometry": ([str(good), "--prompts", str(line)], "LineString"),
        "all prompts outside": ([str(good), "--prompts", str(outside)], "inside the raster"),
        "unwritable outdir": ([str(good), *p, "-o", str(a_file / "out")], "cannot write"),
        "overlap too large": ([str(good), *p, "--tile-size", "256", "--overlap", "256"],
                              "overlap"),
        "bad threshold": ([str(good), *p, "--threshold", "1.5"], "threshold"),
        "bad stretch": ([str(good), *p, "--stretch", "5,1"], "stretch"),
        "CRS but no geotransform": ([str(no_transform), *p], "no geotransform"),
        "ground control points only": ([str(gcp_only), *p], "gdalwarp"),
        "multi-variable netCDF": ([str(netcdf), *p], "2 variables"),
        "1-pixel-high strip": ([str(strip), *p], "too small"),
        "1-pixel-high strip, promptless": ([str(strip)], "too small"),
        "CSV as prompts": ([str(good), "--prompts", str(csv)], "no geometries"),
        "GeoPackage of two layers": ([str(good), "--prompts", str(two_layers)],
                                     "--prompts-layer"),
        "unknown prompts layer": ([str(good), "--prompts", str(two_layers), "--prompts-layer",
                                   "nope"], "clicks, old_clicks"),
        "zero-area box inside": ([str(good), "--prompts", str(flat_box)], "zero area"),
        "prompts in the wrong CRS": ([str(good), *p, "--prompts-crs", "EPSG:4326"],
                                     "inside the raster"),
    }


BAD = [
    "missing raster", "corrupt raster", "raster without CRS", "unknown band", "all-nodata scene",
    "all-nodata scene, promptless", "unreadable vector", "missing vector", "empty vector",
    "vector without CRS", "unsupported geometry", "all prompts outside", "unwritable outdir",
    "overlap too large", "bad threshold", "bad stretch", "CRS but no geotransform",
    "ground control points only", "multi-variable netCDF", "1-pixel-high strip",
    "1-pixel-high strip, promptless", "CSV as prompts", "GeoPackage of two layers",
    "unknown prompts layer", "zero-area box inside", "prompts in the wrong CRS",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_a_one_line_error_and_leaves_nothing(tmp_path, case, monkeypatch) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    args, expected = _bad_inputs(inputs)[case]
    out = tmp_path / "out"
    if "-o" not in args:
        args += ["-o", str(out)]

    def no_model(*a, **k):  # every bad input must be caught before the model loads
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("geofloodsam.model.sam.load_model", no_model)
    result = CliRunner().invoke(main, ["segment", *args, "--quiet"])
    assert result.exit_code != 0
    assert not isinstance(result.exception, AssertionError), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expected.lower() in lines[0].lower(), lines[0]
    assert leftovers(out) == []
    assert sorted(p.name for p in inputs.iterdir() if p.name.startswith(".")) == []


def test_bad_input_raises_geofloodsam_error_from_python(tmp_path) -> None:
    with pytest.raises(GeofloodsamError, match="not found"):
        segment(tmp_path / "nope.tif", sam_model=OracleModel(), quiet=True)


def test_a_folder_at_run_json_is_a_one_line_error_before_the_run(tmp_path, monkeypatch) -> None:
    w, h = 120, 100
    scene = write_raster(tmp_path / "s.tif", dark_scene(w, h, ellipse(w, h, 60, 50, 30, 20)))
    prompts = write_points(tmp_path / "p.geojson", [(60.5, 50.5)])
    out = tmp_path / "out"
    old = previous_outputs(out, "s")
    (out / "s_run.json").mkdir()

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("geofloodsam.model.sam.load_model", no_model)
    result = CliRunner().invoke(main, ["segment", str(scene), "-p", str(prompts), "-o", str(out),
                                       "--quiet"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "in the way" in lines[0]
    assert {n: (out / n).read_bytes() for n in old} == old
    assert leftovers(out) == sorted([*old, "s_run.json"])


# --------------------------------------------------------------------------- prompts
def test_outside_prompts_are_counted_and_warned(tmp_path) -> None:
    w, h = 300, 200
    scene = write_raster(tmp_path / "scene.tif", dark_scene(w, h, ellipse(w, h, 150, 100, 80, 60)))
    prompts = write_points(tmp_path / "p.geojson", [(150.5, 100.5), (-50, 20), (900, 900)])
    res = segment(scene, prompts, tmp_path / "out", tile_size=256, overlap=64,
                  sam_model=OracleModel(), quiet=True)
    assert res.record["prompts"]["outside"] == 2


@pytest.mark.slow
def test_same_mask_for_prompts_in_4326_and_in_the_raster_crs(tmp_path, tiny_model) -> None:
    from geofloodsam.datasets.sample_scenes import river_scene

    files = river_scene(tmp_path, 640, 480)
    masks = []
    for name, prompts in (("utm", files.prompts_utm), ("wgs84", files.prompts_4326)):
        res = segment(files.image, prompts, tmp_path / name, tile_size=256, overlap=64,
                      sam_model=tiny_model, quiet=True)
        masks.append(read_mask(res.mask_path))
        assert res.record["prompts"]["outside"] == 0
    assert masks[0].any()
    np.testing.assert_array_equal(masks[0], masks[1])


# --------------------------------------------------------------------------- work functions
def _recording_work(monkeypatch) -> list:
    """The work functions the tile tasks of a run were sent with, in order."""
    from geofloodsam.segmentation import pipeline

    real, seen = pipeline.run_tile_chunk, []

    def recording(model, scene, stretch, task, keeper):
        seen.append(task.work)
        return real(model, scene, stretch, task, keeper)

    monkeypatch.setattr(pipeline, "run_tile_chunk", recording)
    return seen


@pytest.mark.parametrize("method", ["index", "fused"])
def test_a_scene_with_a_prior_sends_the_work_its_plan_names(
    tmp_path, write_chip_set, tiny_model, monkeypatch, method
) -> None:
    from geofloodsam.segmentation.prior_tiles import PRIOR_WORK

    seen = _recording_work(monkeypatch)
    chip = write_chip_set(tmp_path / "chips", sensors=("s1",)) / "S1Hand" / "Alpha_1_S1Hand.tif"
    model = tiny_model if method == "fused" else None
    segment(chip, None, tmp_path / "out", method=method, sam_model=model, quiet=True)
    assert seen and set(seen) == {PRIOR_WORK[method]}


def test_a_scene_without_a_prior_sends_sams_work(tmp_path, monkeypatch) -> None:
    from geofloodsam.tiles.work import run_chunk

    seen = _recording_work(monkeypatch)
    w, h = 300, 200
    scene = write_raster(tmp_path / "s.tif", dark_scene(w, h, ellipse(w, h, 150, 100, 80, 60)))
    prompts = write_points(tmp_path / "p.geojson", [(150.5, 100.5)])
    segment(scene, prompts, tmp_path / "out", tile_size=128, overlap=32,
            sam_model=OracleModel(), quiet=True)
    assert seen and set(seen) == {run_chunk}
