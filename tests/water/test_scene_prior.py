"""Scene priors tile by tile: one scene threshold, windows equal to the scene prior's."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from geofloodsam.raster.sensors import detect_sensor
from geofloodsam.water import scene_prior as sp

WINDOWS = [Window(0, 0, 512, 512), Window(100, 37, 200, 300), Window(400, 400, 112, 112),
           Window(0, 509, 512, 3)]


@pytest.mark.parametrize("chip", ["S1Hand/Bolivia_312675_S1Hand.tif",
                                  "S2Hand/Spain_7370579_S2Hand.tif"])
def test_windows_equal_the_scene_prior(shared, chip):
    with rasterio.open(shared(f"data/sen1floods11/{chip}")) as ds:
        info = detect_sensor(ds)
        prior = sp.scene_prior(ds, info)
        spec = sp.PriorSpec.of(prior)
        assert sp.PriorSpec.from_dict(spec.to_dict()) == spec
        assert prior.details["read"] == "full resolution"
        for win in WINDOWS:
            tile = sp.window_prior(ds, info, spec, win)
            rows = slice(int(win.row_off), int(win.row_off + win.height))
            cols = slice(int(win.col_off), int(win.col_off + win.width))
            np.testing.assert_array_equal(tile.valid, prior.valid[rows, cols])
            np.testing.assert_allclose(tile.score, prior.score[rows, cols], rtol=0, atol=1e-5)
            np.testing.assert_array_equal(tile.water(), prior.water()[rows, cols])


def _s1(path, side: int) -> None:
    rng = np.random.default_rng(0)
    vv = rng.normal(-9, 1.5, (side, side)).astype(np.float32)
    vh = rng.normal(-16, 1.5, (side, side)).astype(np.float32)
    vv[:, : side // 3] -= 10
    vh[:, : side // 3] -= 10  # a dark (wet) third
    profile = dict(driver="GTiff", width=side, height=side, count=2, dtype="float32",
                   crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.stack([vv, vh]))


def test_large_scene_threshold_from_a_decimated_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sp, "MAX_SIDE", 128)
    _s1(tmp_path / "s1.tif", 300)
    with rasterio.open(tmp_path / "s1.tif") as ds:
        info = detect_sensor(ds)
        prior = sp.scene_prior(ds, info)
        assert prior.score.shape == (100, 100) and prior.details["read"] == "1/3 decimated"
        assert -26 < prior.threshold < -16  # between the wet (-26) and dry (-16) modes
        tile = sp.window_prior(ds, info, sp.PriorSpec.of(prior), Window(0, 0, 300, 300))
    assert tile.score.shape == (300, 300)
    assert tile.water()[:, :90].mean() > 0.95 and tile.water()[:, 110:].mean() < 0.05


def test_rgb_has_no_prior(tmp_path):
    profile = dict(driver="GTiff", width=32, height=32, count=3, dtype="uint8",
                   crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10))
    with rasterio.open(tmp_path / "rgb.tif", "w", **profile) as ds:
        ds.write(np.zeros((3, 32, 32), np.uint8))
    with rasterio.open(tmp_path / "rgb.tif") as ds:
        assert sp.scene_prior(ds, detect_sensor(ds)) is None
