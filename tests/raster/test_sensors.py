"""sensors: detection from band layout and values, forced-sensor errors, fixed composites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.radar_units import to_db
from geofloodsam.raster.sensors import (
    S1_RANGES,
    S2_L1C,
    detect_sensor,
    make_composite,
    physical,
    read_bands,
    read_composite,
    s2_band_name,
)

TRANSFORM = Affine(1e-4, 0.0, 10.0, 0.0, -1e-4, 50.0)


def write(path: Path, data: np.ndarray, descriptions=None, nodata=None) -> Path:
    """Write (B, h, w) as a GeoTIFF in EPSG:4326 with optional band descriptions."""
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1],
                   count=data.shape[0], dtype=data.dtype.name, crs="EPSG:4326",
                   transform=TRANSFORM, nodata=nodata, photometric="minisblack")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
    return path


def s1_db(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vv = rng.normal(-10.0, 2.0, (h, w))
    vv[:, : w // 3] = rng.normal(-20.0, 1.5, (h, w // 3))
    return np.stack([vv, vv - 7.0]).astype(np.float32)


def s2_dn(count: int = 13, h: int = 32, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(200, 3000, (count, h, w)).astype(np.int16)


@pytest.mark.parametrize(
    "text,name",
    [("B8A", "B8A"), ("b08", "B8"), ("B11", "B11"), ("S2_B4", "B4"), ("VV", None), (None, None),
     ("B13", None), ("B8a", "B8A")],
)
def test_s2_band_name(text, name):
    assert s2_band_name(text) == name


@pytest.mark.parametrize(
    "count,descriptions,expect_nir",
    [(13, None, 8), (12, None, 8), (13, list(S2_L1C), 8),
     (5, ["B2", "B3", "B4", "B8", "B11"], 4)],
)
def test_detect_s2(tmp_path, count, descriptions, expect_nir):
    path = write(tmp_path / "s2.tif", s2_dn(count), descriptions)
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
    assert info.sensor == "s2"
    assert info.index_bands["nir"] == expect_nir
    assert info.scale == pytest.approx(1e-4)
    assert "Sentinel-2" in info.reason
    if count == 12:  # L2A order: no B10, so B11 is band 11
        assert info.index_bands["swir1"] == 11
    if count == 13:
        assert info.composite_bands == (12, 8, 4)  # B11, B8, B4


def test_detect_s2_float_reflectance(tmp_path):
    path = write(tmp_path / "s2f.tif", (s2_dn(13) / 10000.0).astype(np.float32))
    with rasterio.open(path) as ds:
        info = detect_sensor(ds, composite="true")
    assert info.scale == 1.0 and info.composite_bands == (4, 3, 2)


@pytest.mark.parametrize("scale", ["db", "power"])
def test_detect_s1_db_and_linear(tmp_path, scale):
    db = s1_db()
    data = db if scale == "db" else (10.0 ** (db / 10.0)).astype(np.float32)
    path = write(tmp_path / "s1.tif", data, ["VV", "VH"])
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
        raw = read_bands(ds, info.composite_bands)
    assert info.sensor == "s1" and info.radar_scale == scale
    assert ("dB" if scale == "db" else "linear power") in info.reason
    np.testing.assert_allclose(physical(raw, info), db, atol=1e-4)


def test_s1_band_order_from_descriptions(tmp_path):
    path = write(tmp_path / "s1.tif", s1_db()[::-1].copy(), ["VH", "VV"])
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
    assert info.index_bands == {"co": 2, "cross": 1}


def test_s1_neither_db_nor_linear(tmp_path):
    """Signed values far from any dB range fit no radar unit: one line naming the range."""
    data = np.random.default_rng(0).uniform(-3000, 4000, (2, 32, 32)).astype(np.float32)
    path = write(tmp_path / "odd.tif", data)
    with rasterio.open(path) as ds, pytest.raises(
        GeofloodsamError, match=r"dB.*linear power.*amplitude.*values -3e\+03\.\.4e\+03"
    ):
        detect_sensor(ds)


@pytest.mark.parametrize(
    "count,dtype,sensor",
    [(4, "uint8", "naip"), (3, "uint8", "rgb"), (1, "uint8", "rgb"), (6, "uint16", "rgb")],
)
def test_detect_naip_rgb(tmp_path, count, dtype, sensor):
    data = np.random.default_rng(0).integers(0, 200, (count, 16, 16)).astype(dtype)
    path = write(tmp_path / "x.tif", data)
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
    assert info.sensor == sensor
    assert info.physical == (dtype == "uint8")
    if sensor == "naip":
        assert info.index_bands == {"green": 2, "red": 1, "nir": 4}


@pytest.mark.parametrize(
    "count,dtype,forced,message",
    [
        (4, "uint8", "s2", "--sensor s2 needs .* has 4 bands uint8"),
        (13, "int16", "s1", "--sensor s1 needs 2 float bands .* has 13 bands int16"),
        (2, "uint8", "s1", "--sensor s1 needs 2 float bands .* has 2 bands uint8"),
        (3, "uint8", "naip", "--sensor naip needs 4 bands .* has 3 bands uint8"),
        (3, "uint8", "modis", "--sensor modis: use one of"),
    ],
)
def test_forced_sensor_errors(tmp_path, count, dtype, forced, message):
    data = np.ones((count, 8, 8), dtype=dtype)
    path = write(tmp_path / "bad.tif", data)
    with rasterio.open(path) as ds, pytest.raises(GeofloodsamError, match=message) as err:
        detect_sensor(ds, forced)
    assert "\n" not in str(err.value.message)


def test_two_integer_bands_are_not_sentinel1(tmp_path):
    path = write(tmp_path / "two.tif", np.ones((2, 8, 8), dtype="uint8"))
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
    assert info.sensor == "rgb" and "not Sentinel-1" in info.reason and not info.uses_composite


def test_s1_composite_fixed_ranges():
    info_like = _s1_info_db()
    raw = np.array([[[-25.0, 0.0, np.nan]], [[-30.0, -5.0, -20.0]]])
    rgb, valid = make_composite(raw, info_like)
    assert valid.tolist() == [[True, True, False]]
    assert rgb[0, 0].tolist() == [0, 0, 85]  # VV-VH = 5 dB of 0..15
    assert rgb[0, 1].tolist() == [255, 255, 85]
    assert rgb[0, 2].tolist() == [0, 0, 0]


def _s1_info_db():
    from geofloodsam.raster.sensors import SensorInfo

    return SensorInfo("s1", "test", (1, 2), S1_RANGES, {"co": 1, "cross": 2}, radar_scale="db")


def test_composite_is_scene_independent(tmp_path):
    """The same pixel values give the same composite whatever the rest of the scene holds."""
    a = s2_dn(13)
    b = a.copy()
    b[:, :, 16:] = 9000  # a bright half would move a percentile stretch, not a fixed one
    with rasterio.open(write(tmp_path / "a.tif", a)) as ds:
        ca, _ = read_composite(ds, detect_sensor(ds))
    with rasterio.open(write(tmp_path / "b.tif", b)) as ds:
        cb, _ = read_composite(ds, detect_sensor(ds))
    np.testing.assert_array_equal(ca[:, :16], cb[:, :16])


def test_to_db():
    np.testing.assert_allclose(to_db(np.array([1.0, 0.1, 0.0]))[:2], [0.0, -10.0])
    assert np.isnan(to_db(np.array([0.0]))[0])


# ---------------------------------------------------------------------------- real chips
@pytest.mark.parametrize(
    "rel,sensor",
    [
        ("sen1floods11/S2Hand/Spain_7370579_S2Hand.tif", "s2"),
        ("sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif", "s1"),
        ("geo/sentinel2-usa-430764/USA_430764_S2Hand.tif", "s2"),
        ("geo/naip-north-dakota/m_4709963_se_14_1_20090803.tif", "naip"),
        ("geo/landsat-bahamas/RGB.byte.tif", "rgb"),
    ],
)
def test_real_rasters(rel, sensor, shared_data, shared):
    path = shared_data / rel
    if "naip" in rel:
        found = sorted((shared_data / "geo/naip-north-dakota").glob("*.tif"))
        path = found[0] if found else path
    shared(path.relative_to(shared_data.parent))
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
        rgb, valid = read_composite(ds, info)
    assert info.sensor == sensor
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and valid.any()
    if sensor == "s1":
        assert info.radar_scale == "db" and info.index_bands == {"co": 1, "cross": 2}


def test_real_s1_all_nan_chip(shared):
    path = shared("data/sen1floods11/S1Hand/Paraguay_34417_S1Hand.tif")
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
        _, valid = read_composite(ds, info)
    assert info.sensor == "s1" and not valid.any()


@pytest.mark.parametrize(
    "description,sensor,role",
    [("VV", "s1", "co"), ("VH", "s1", "cross"), ("Sigma0_VH_db", "s1", "cross"),
     ("HH", "sar", "co"), ("HV", "sar", "cross")],
)
def test_single_polarisation_from_the_band_description(tmp_path, description, sensor, role):
    path = write(tmp_path / "one.tif", s1_db()[1:], [description])
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
        rgb, valid = read_composite(ds, info)
    assert info.sensor == sensor and info.index_bands == {role: 1}
    assert info.radar_scale == "db" and info.composite_bands == (1,)
    assert rgb.shape == (64, 64, 3) and valid.all() and (rgb[..., 0] == rgb[..., 2]).all()


def test_one_undescribed_band_is_grey_rgb_unless_sar_is_forced(tmp_path):
    path = write(tmp_path / "one.tif", s1_db()[:1])
    with rasterio.open(path) as ds:
        assert detect_sensor(ds).sensor == "rgb"
        info = detect_sensor(ds, "sar")
    assert info.sensor == "sar" and info.index_bands == {"co": 1}
    assert "no polarisation in the descriptions" in info.reason


@pytest.mark.parametrize(
    "dtype,scale,units,relative",
    [("uint16", 3000.0, "amplitude", True), ("float32", 1.0, "amplitude", False)],
)
def test_amplitude_is_relative_unless_calibrated(tmp_path, dtype, scale, units, relative):
    amp = np.sqrt(10.0 ** (s1_db()[1:] / 10.0)) * scale
    path = write(tmp_path / "amp.tif", amp.astype(dtype), ["HH amplitude"])
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
        raw = read_bands(ds, [1])
    assert info.radar_scale == units and info.relative is relative
    assert info.units_how == "band metadata"
    db = physical(raw, info)
    expect = s1_db()[1] + (20 * np.log10(scale))
    np.testing.assert_allclose(db[0], expect, atol=0.1 if dtype == "uint16" else 1e-3)
