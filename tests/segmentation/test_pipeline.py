"""The segment command end to end: the CLI with the tiny SAM, real scenes with MobileSAM,
all-zero and damaged rasters, and stop signals mid-run.

The engine's waves, the plan's checks of bad input and the outputs have their own modules
(``tests/tiles/test_engine.py``, ``test_plan.py``, ``test_outputs.py``); tests marked slow
use the real MobileSAM (session fixture ``vit_t``).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from oracle_scenes import (
    ORIGIN,
    OUTPUT_SUFFIXES,
    UTM,
    dark_scene,
    ellipse,
    leftovers,
    read_mask,
    write_points,
    write_raster,
)
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import Point

from geofloodsam.cli import main
from geofloodsam.datasets.truth_prompts import deepest_point
from geofloodsam.evaluation.metrics import scores
from geofloodsam.geo.transforms import pixel_to_world
from geofloodsam.segmentation.pipeline import segment


def test_cli_runs_end_to_end_with_the_tiny_model(tmp_path) -> None:
    w, h = 300, 200
    scene = write_raster(tmp_path / "scene.tif", dark_scene(w, h, ellipse(w, h, 150, 100, 80, 60)))
    prompts = write_points(tmp_path / "p.geojson", [(150.5, 100.5)], to_crs="EPSG:4326")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["segment", str(scene), "--prompts", str(prompts), "-o", str(out), "--model",
               "tiny", "--device", "cpu", "--tile-size", "256", "--overlap", "64",
               "--min-area", "100", "--simplify", "5"],
    )
    assert result.exit_code == 0, result.output
    assert leftovers(out) == sorted("scene" + s for s in OUTPUT_SUFFIXES)
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("scene.tif:") and "tile(s) encoded" in summary
    frame = gpd.read_file(out / "scene_flood.gpkg", layer="flood")
    assert (frame["area_m2"] >= 100).all() and frame["model"].str.startswith("tiny").all()
    quiet = CliRunner().invoke(
        main, ["segment", str(scene), "-p", str(prompts), "-o", str(out), "--model", "tiny",
               "--device", "cpu", "--quiet"],
    )
    assert quiet.exit_code == 0 and quiet.output == ""


def test_uint16_four_band_scene_with_nodata_border(tmp_path, tiny_model) -> None:
    from geofloodsam.datasets.sample_scenes import LakeSpec, SceneRecipe, synthetic_scene

    w, h = 640, 480
    yy, xx = np.mgrid[0:h, 0:w]
    valid = xx > 60 + 0.3 * yy  # a slanted swath edge: nodata on the left
    files = synthetic_scene(tmp_path, "swath", SceneRecipe(
        w, h, seed=5, kind="4band", valid=valid, lake=LakeSpec(380, 240, 150, 100)))
    res = segment(files.image, files.prompts_utm, tmp_path / "out", tile_size=256, overlap=64,
                  sam_model=tiny_model, quiet=True)
    mask, truth = read_mask(res.mask_path), read_mask(files.truth)
    np.testing.assert_array_equal(mask == 255, truth == 255)
    np.testing.assert_array_equal(mask == 255, ~valid)
    stretch = res.record["stretch"]
    assert stretch["method"].startswith("percentile") and len(stretch["lows"]) == 3
    assert res.record["scene"]["dtype"] == "uint16"


@pytest.mark.parametrize("prompted", [False, True])
def test_an_all_zero_scene_is_a_one_line_error_and_leaves_nothing(tmp_path, prompted) -> None:
    w, h = 300, 200
    scene = write_raster(tmp_path / "zeros.tif", np.zeros((3, h, w), np.uint8))
    prompts = write_points(tmp_path / "p.geojson", [(150.5, 100.5)]) if prompted else None
    out = tmp_path / "out"
    args = ["segment", str(scene), "-o", str(out), "--model", "tiny", "--device", "cpu",
            "--tile-size", "256", "--overlap", "64", "--quiet"]
    result = CliRunner().invoke(main, args + (["-p", str(prompts)] if prompted else []))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "one colour" in lines[0]
    assert leftovers(out) == []


# --------------------------------------------------------------------------- real MobileSAM
def _to_4326(path: Path, pixels, transform, crs) -> Path:
    """Write pixel (x, y) points of a raster as a GeoJSON in EPSG:4326."""
    xs, ys = pixel_to_world(transform, [p[0] for p in pixels], [p[1] for p in pixels])
    gdf = gpd.GeoDataFrame(geometry=[Point(x, y) for x, y in zip(xs, ys, strict=True)], crs=crs)
    gdf.to_crs("EPSG:4326").to_file(path)
    return path


@pytest.mark.slow
def test_sen1floods11_s2_chip(tmp_path, vit_t, shared) -> None:
    root = shared("data/sen1floods11")
    image = root / "S2Hand" / "Spain_7370579_S2Hand.tif"
    label_path = root / "LabelHand" / "Spain_7370579_LabelHand.tif"
    with rasterio.open(label_path) as ds:
        label, grid = ds.read(1), (ds.crs, ds.transform, ds.width, ds.height)
    bodies, _ = ndimage.label(label == 1, structure=np.ones((3, 3), bool))
    sizes = np.bincount(bodies.ravel())[1:]
    points = [deepest_point(bodies == i + 1) for i in np.argsort(-sizes)[:3]]
    prompts = _to_4326(tmp_path / "flood_points.geojson", points, grid[1], grid[0])
    res = segment(image, prompts, tmp_path / "out", bands="4,3,2", sam_model=vit_t, quiet=True)
    with rasterio.open(res.mask_path) as ds, rasterio.open(image) as src:
        assert (ds.crs, ds.transform, ds.shape) == (src.crs, src.transform, src.shape)
        # the chip and its label differ by 3e-19 degree in pixel size (1e-12 of a pixel)
        assert (ds.crs, ds.width, ds.height) == (grid[0], grid[2], grid[3])
        assert ds.transform.almost_equals(grid[1], precision=1e-15)
        mask = ds.read(1)
    iou = scores(mask == 1, label == 1, label != -1)["iou"]
    print(f"Sen1Floods11 Spain_7370579 S2 (4,3,2), 3 points: IoU {iou:.4f}")
    # areas in a geographic CRS: a pixel of 8.98e-5 deg at 38.1 N on a 6371 km sphere
    lat = np.radians(grid[1].f + grid[1].e * 256)
    pixel_m2 = (np.radians(grid[1].a) * 6_371_000) ** 2 * np.cos(lat)
    water = res.record["water"]
    assert water["area_m2"] == pytest.approx(water["pixels"] * pixel_m2, rel=0.01)
    frame = gpd.read_file(res.gpkg_path, layer="flood")
    assert frame["area_m2"].sum() == pytest.approx(water["area_m2"], rel=1e-3)
    # Measured 0.317 (pretrained MobileSAM, CPU). Flooded fields in true colour look like
    # the dark fields around them: for these prompts no single SAM mask (of the 3 multimask
    # outputs of any of the points, or all points together) scores above 0.36 against the
    # label, so the pretrained decoder is far from the label here; 0.25 guards against a
    # broken pipeline (wrong bands, stretch or grid give < 0.05) without pretending more.
    assert iou > 0.25


@pytest.mark.slow
def test_naip_scene_end_to_end_through_the_cli(tmp_path, shared, mobile_sam_path) -> None:
    scene = shared("data/geo/naip-north-dakota/m_4709963_se_14_1_20200831.tif")
    with rasterio.open(scene) as ds:
        green, nir = ds.read(2).astype(float), ds.read(4).astype(float)
        transform, crs = ds.transform, ds.crs
    ndwi_water = (green - nir) / (green + nir + 1e-6) > 0.1  # open water in NAIP's NIR band
    bodies, _ = ndimage.label(ndwi_water)
    sizes = np.bincount(bodies.ravel())[1:]
    points = [deepest_point(bodies == i + 1) for i in np.argsort(-sizes)[:3]]
    prompts = _to_4326(tmp_path / "lakes.geojson", points, transform, crs)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "segment", str(scene), "--prompts", str(prompts), "-o", str(out), "--bands", "1,2,3",
        "--device", "cpu", "--checkpoint", str(mobile_sam_path),
        "--decoder", "pretrained", "--simplify", "5", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    frame = gpd.read_file(out / f"{scene.stem}_flood.gpkg", layer="flood")
    assert frame.crs.to_epsg() == 26914 and len(frame) >= 3
    world = gpd.read_file(prompts).to_crs(frame.crs)
    assert all(frame.contains(pt).any() for pt in world.geometry)  # every lake clicked is mapped
    mask = read_mask(out / f"{scene.stem}_mask.tif") == 1
    # A click on NAIP selects its water body of the fused evidence (the scene's NDWI prior
    # and SAM): what is mapped is the index's water, and the clicked lakes are mapped whole.
    record = json.loads((out / f"{scene.stem}_run.json").read_text())
    ndwi = (green - nir) / (green + nir + 1e-6)
    index_water = ndwi > record["prior"]["threshold"]
    clicked = np.isin(bodies, np.argsort(-sizes)[:3] + 1)
    precision = scores(mask, index_water)["precision"]
    covered = (mask & clicked).sum() / clicked.sum()
    print(f"NAIP: {len(frame)} polygons, precision against the index's water {precision:.3f}, "
          f"clicked lakes covered {covered:.3f}")
    assert precision > 0.95  # measured 1.000 (before the selection: 0.978)
    assert covered > 0.95  # measured 1.000 (before: 0.593, parts of the lakes cut at tiles)


# --------------------------------------------------------------------------- faults mid-run
def _tiny_cli(scene: Path, out: Path, *extra: str) -> list[str]:
    return ["segment", str(scene), "-o", str(out), "--model", "tiny", "--device", "cpu",
            "--tile-size", "256", "--overlap", "64", "--quiet", *extra]


def test_a_truncated_geotiff_is_one_line_mid_run(tmp_path) -> None:
    import os

    w, h = 600, 500
    scene = tmp_path / "cut.tif"
    with rasterio.open(
        scene, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs=UTM,
        transform=from_origin(*ORIGIN, 10.0, 10.0), tiled=True, blockxsize=256, blockysize=256,
        compress="deflate",
    ) as ds:
        ds.write(np.random.default_rng(0).integers(0, 255, (3, h, w), dtype=np.uint8))
    os.truncate(scene, scene.stat().st_size // 2)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, _tiny_cli(scene, out))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot read "), result.output
    assert "truncated or damaged" in lines[0] and str(scene) in lines[0]
    assert leftovers(out) == []


def test_sigterm_mid_run_cleans_up_and_exits_143(tmp_path, monkeypatch) -> None:
    import os
    import signal

    from geofloodsam.segmentation import pipeline

    w, h = 600, 500
    scene = write_raster(tmp_path / "s.tif", dark_scene(w, h, ellipse(w, h, 300, 250, 200, 150)))
    out = tmp_path / "out"
    real, calls = pipeline.run_tile_chunk, []

    def terminated_after_one(*args, **kwargs):  # `timeout` / a scheduler stops the run
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_tile_chunk", terminated_after_one)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(main, _tiny_cli(scene, out))
    assert result.exit_code == 143
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: terminated (SIGTERM)"), result.output
    assert leftovers(out) == [] and not out.exists()  # the folder it created is gone too
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.slow
def test_sigterm_to_a_running_segment_process_leaves_nothing(tmp_path, mobile_sam_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    w, h = 1024, 1024
    scene = write_raster(tmp_path / "s.tif", dark_scene(w, h, ellipse(w, h, 500, 520, 300, 200)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    proc = subprocess.Popen(
        [sys.executable, "-m", "geofloodsam", "segment", str(scene), "-o", str(out),
         "--checkpoint", str(mobile_sam_path), "--decoder", "pretrained", "--device", "cpu",
         "--tile-size", "256", "--overlap", "32", "--quiet"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(".s.geofloodsam-*/tiles/*.npy")):  # tiles are being stored
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run never started its tiles"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("Error: terminated (SIGTERM)")
    assert "Traceback" not in err
    assert leftovers(out) == ["keep.txt"]
