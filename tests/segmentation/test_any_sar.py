"""Any SAR through ``segment``: single-polarisation rasters derived at test time from the real
Sen1Floods11 chips (VV-only dB, uint16 amplitude DN, HH/HV dual-pol), ``--sar-units``, the
bad inputs, and the Sentinel-2 L2A offset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from geofloodsam.cli import main
from geofloodsam.raster.sensors import S2_L1C, detect_sensor, physical, read_bands

CHIP = "Nigeria_812045"  # half water: the split has two classes to find


@pytest.fixture(scope="module")
def s1_chip(shared) -> tuple[np.ndarray, dict, np.ndarray]:
    """(VV/VH dB (2, H, W), profile, label) of a real S1 chip."""
    image = shared(f"data/sen1floods11/S1Hand/{CHIP}_S1Hand.tif")
    label = shared(f"data/sen1floods11/LabelHand/{CHIP}_LabelHand.tif")
    with rasterio.open(image) as ds:
        db, profile = ds.read(), ds.profile
    with rasterio.open(label) as ds:
        return db, profile, ds.read(1)


def _write(path: Path, data: np.ndarray, profile: dict, descriptions=None, **extra) -> Path:
    profile = {**profile, "count": data.shape[0], "dtype": str(data.dtype), **extra}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        for i, text in enumerate(descriptions or (), start=1):
            ds.set_band_description(i, text)
    return path


def _amplitude_dn(db: np.ndarray, gain: float = 3000.0) -> np.ndarray:
    """dB -> uint16 amplitude DN with an arbitrary gain (uncalibrated); 0 = nodata."""
    amp = np.sqrt(10.0 ** (db / 10.0)) * gain
    return np.where(np.isfinite(amp), np.clip(np.round(amp), 1, 65535), 0).astype(np.uint16)


def _segment(tmp_path: Path, raster: Path, *options: str):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["segment", str(raster), "-o", str(out), "-q", *options])
    return res, out


def _iou(out: Path, raster: Path, label: np.ndarray) -> float:
    with rasterio.open(out / f"{raster.stem}_mask.tif") as ds:
        mask = ds.read(1)
    ok = (label >= 0) & (mask != 255)
    water, truth = (mask == 1) & ok, (label == 1) & ok
    return float((water & truth).sum() / (water | truth).sum())


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,sensor,units,relative",
    [("vv-db", "s1", "db", False), ("hv-amplitude", "sar", "amplitude", True),
     ("vh-nodesc", "sar", "db", False)],
)
def test_single_band_sar_is_mapped_by_the_radar_split(tmp_path, s1_chip, kind, sensor, units,
                                                      relative):
    db, profile, label = s1_chip
    if kind == "vv-db":
        raster = _write(tmp_path / "vv.tif", db[:1], profile, ["VV"])
        options = ()
    elif kind == "hv-amplitude":
        raster = _write(tmp_path / "hv.tif", _amplitude_dn(db[1])[None], profile, ["HV"],
                        nodata=0)
        options = ()
    else:
        raster = _write(tmp_path / "vh.tif", db[1:], profile)
        options = ("--sensor", "sar")
    res, out = _segment(tmp_path, raster, *options)
    assert res.exit_code == 0, res.output
    record = json.loads((out / f"{raster.stem}_run.json").read_text())
    info = record["sensor"]
    assert info["sensor"] == sensor and info["radar_scale"] == units
    assert info["relative"] is relative and info["units_how"]
    assert record["method"]["method"] == "index"  # auto: the radar split, no SAM
    assert record["prior"]["method"].startswith("sar-")
    assert record["prior"]["relative"] is relative
    # the same chip's two-band figure with the default split: 0.84 (benchmarks/satellite_cv.py)
    assert _iou(out, raster, label) > 0.75


def test_dual_pol_hh_hv_is_handled_like_vv_vh(tmp_path):
    rng = np.random.default_rng(0)
    data = np.stack([rng.normal(-9, 2, (64, 64)), rng.normal(-16, 2, (64, 64))]).astype(
        np.float32)
    profile = dict(driver="GTiff", width=64, height=64, crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 10, 10))
    path = _write(tmp_path / "hhhv.tif", data[::-1].copy(), profile, ["HV", "HH"])
    with rasterio.open(path) as ds:
        info = detect_sensor(ds)
    assert info.sensor == "sar" and info.index_bands == {"co": 2, "cross": 1}
    assert "HV, HH" in info.reason and info.radar_scale == "db"


def test_values_fitting_no_sar_unit_are_one_line(tmp_path):
    data = np.random.default_rng(0).uniform(-3000, 4000, (1, 64, 64)).astype(np.float32)
    profile = dict(driver="GTiff", width=64, height=64, crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 10, 10))
    raster = _write(tmp_path / "odd.tif", data, profile)
    res, out = _segment(tmp_path, raster, "--sensor", "sar")
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "values -3e+03..4e+03" in lines[0] and "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())


def test_forced_units_against_the_values_warn_naming_both(tmp_path):
    db = np.random.default_rng(0).normal(-15, 3, (1, 64, 64))
    profile = dict(driver="GTiff", width=64, height=64, crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 10, 10))
    raster = _write(tmp_path / "amp.tif", _amplitude_dn(db), profile, ["HH"], nodata=0)
    res, out = _segment(tmp_path, raster, "--sar-units", "db")
    assert res.exit_code == 0, res.output
    warning = [line for line in res.output.splitlines() if line.startswith("Warning: ")]
    assert len(warning) == 1
    assert "--sar-units db" in warning[0] and "look like amplitude" in warning[0]
    record = json.loads((out / "amp_run.json").read_text())
    assert record["sensor"]["radar_scale"] == "db"
    assert record["sensor"]["units_how"] == "forced (--sar-units)"


def test_bad_option_values_are_one_line(tmp_path):
    res = CliRunner().invoke(main, ["segment", "x.tif", "--s2-offset", "lots"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["segment", "x.tif", "--sar-units", "neper"])
    assert res.exit_code != 0 and "neper" in res.output


def _s2(tmp_path: Path, tags: dict | None = None) -> Path:
    rng = np.random.default_rng(2)
    data = (rng.integers(1000, 3000, (13, 32, 32))).astype(np.uint16)
    profile = dict(driver="GTiff", width=32, height=32, crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 10, 10))
    path = _write(tmp_path / "s2.tif", data, profile, S2_L1C)
    if tags:
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(**tags)
    return path


@pytest.mark.parametrize(
    "tags,spec,offset",
    [(None, "auto", 0.0), ({"BOA_ADD_OFFSET_B2": "-1000"}, "auto", -1000.0),
     (None, "s2|s2-offset=-1000", -1000.0), ({"BOA_ADD_OFFSET": "-1000"}, "auto|s2-offset=0", 0.0)],
)
def test_s2_offset_from_metadata_or_option(tmp_path, tags, spec, offset):
    path = _s2(tmp_path, tags)
    with rasterio.open(path) as ds:
        info = detect_sensor(ds, spec)
        raw = read_bands(ds, [info.index_bands["green"]])
    assert info.offset == offset and ("offset" in info.reason)
    np.testing.assert_allclose(physical(raw, info), (raw + offset) / 10000.0)


def test_s2_offset_is_recorded_in_run_json(tmp_path):
    path = _s2(tmp_path)
    res, out = _segment(tmp_path, path, "--s2-offset", "-1000")
    assert res.exit_code == 0, res.output
    record = json.loads((out / "s2_run.json").read_text())
    assert record["sensor"]["offset"] == -1000.0
    assert "offset -1000 DN (--s2-offset)" in record["sensor"]["reason"]
