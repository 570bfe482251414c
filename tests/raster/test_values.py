"""Values that are not measurements: a data type with no real values (complex) is refused
before any value is read, and an undeclared fill value (-3.4e38) is read as nodata with one
warning line of ours, never a Python warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from geofloodsam.cli import main
from geofloodsam.raster import scene as scene_module
from geofloodsam.raster.scene import Scene, compute_stretch
from geofloodsam.raster.sensors import detect_sensor
from geofloodsam.raster.values import FILL_MAGNITUDE, fill_pixels

FLOAT32_LOWEST = float(np.finfo(np.float32).min)  # -3.4028235e38, GDAL's usual fill


def _float_scene(path: Path, dtype: str = "float32", fill_columns: int = 3) -> Path:
    w, h = 300, 200
    yy, xx = np.mgrid[0:h, 0:w]
    water = ((xx - 150) / 80) ** 2 + ((yy - 100) / 60) ** 2 < 1
    rng = np.random.default_rng(0)
    data = np.where(water, 0.05, 0.3)[None].repeat(3, 0) + rng.random((3, h, w)) * 0.05
    data = data.astype(np.float32)
    data[:, :, :fill_columns] = FLOAT32_LOWEST  # under 2 % of the pixels: not in the stretch
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype=dtype,
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(data.astype(dtype))
    return path


def _segment(scene: Path, out: Path):
    return CliRunner().invoke(main, [
        "segment", str(scene), "-o", str(out), "--model", "tiny", "--device", "cpu",
        "--runtime", "torch", "--tile-size", "256", "--overlap", "64", "--quiet"])


@pytest.fixture(autouse=True)
def _python_warnings_are_errors():
    """A Python warning from any geofloodsam module fails these tests (it would leak)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", module="geofloodsam")
        yield


def test_fill_pixels_are_the_extremes_of_float_data_only() -> None:
    values = np.array([FLOAT32_LOWEST, -1e30, -9.9e29, 0.0, np.inf, 3.4e38], np.float32)
    assert fill_pixels(values).tolist() == [True, True, False, False, True, True]
    assert not fill_pixels(np.array([65535], np.uint16)).any()
    assert FILL_MAGNITUDE < float(np.finfo(np.float32).max)


def test_an_undeclared_fill_value_is_nodata_with_one_warning_line(tmp_path) -> None:
    scene = _float_scene(tmp_path / "fill.tif")
    scene_module._FILL_REPORTED.discard(str(scene))
    out = tmp_path / "out"
    result = _segment(scene, out)
    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Warning: {scene} declares no nodata"), lines
    assert "-3.4028234663852886e+38" in lines[0] and "gdal_edit.py -a_nodata" in lines[0]
    with rasterio.open(out / "fill_mask.tif") as ds:
        mask = ds.read(1)
    assert (mask[:, :3] == 255).all() and (mask[:, 3:] != 255).all()  # fill: nodata, only it


def test_a_fill_value_is_kept_out_of_the_stretch_even_when_it_is_common(tmp_path) -> None:
    scene = _float_scene(tmp_path / "fill.tif", fill_columns=60)  # 20 % of the pixels
    scene_module._FILL_REPORTED.discard(str(scene))
    with Scene.open(scene) as sc:
        stretch = compute_stretch(sc)
        assert stretch.lows.min() > 0.0 and stretch.highs.max() < 0.5  # the data's own range


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_a_complex_raster_is_one_line_before_any_value_is_read(tmp_path, dtype) -> None:
    scene = _float_scene(tmp_path / "complex.tif", dtype=dtype)
    out = tmp_path / "out"
    result = _segment(scene, out)
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert lines == [
        f"Error: raster {scene} has data type {dtype}, which is not supported: convert it to "
        "one of uint8, int8, uint16, int16, uint32, int32, float32, float64."
    ]
    assert not out.exists()
    with rasterio.open(scene) as ds, pytest.raises(Exception, match="not supported"):
        detect_sensor(ds)  # the sensor check alone refuses it too, reading nothing
