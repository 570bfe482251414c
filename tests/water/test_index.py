"""water_index: indices, Otsu / Kittler-Illingworth, bimodal tiles, scene priors; fusion."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.logits import sigmoid
from geofloodsam.water import fusion
from geofloodsam.water.index import (
    FALLBACK,
    PLAUSIBLE,
    ashman_d,
    bimodal_split,
    bimodal_tiles,
    despeckle_db,
    fit_two_gaussians,
    ki_threshold,
    mndwi,
    ndwi,
    optical_prior,
    otsu_threshold,
    radar_prior,
    sar_prior,
    scene_threshold,
    small_regions,
)


def two_modes(n_dark: int, n_bright: int, seed: int = 0, dark=-22.0, bright=-14.0, sd=1.5):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(dark, sd, n_dark), rng.normal(bright, sd, n_bright)])


def sar_scene(water_cols: int, h: int = 256, w: int = 256, seed: int = 0) -> np.ndarray:
    """VH dB: water (-24 dB) in the first ``water_cols`` columns, land (-15 dB) elsewhere."""
    rng = np.random.default_rng(seed)
    vh = rng.normal(-15.0, 1.5, (h, w))
    vh[:, :water_cols] = rng.normal(-24.0, 1.5, (h, water_cols))
    return vh.astype(np.float32)


def test_normalized_difference():
    g = np.array([0.1, 0.3, np.nan, 0.0])
    n = np.array([0.3, 0.1, 0.2, 0.0])
    out = ndwi(g, n)
    np.testing.assert_allclose(out[:2], [-0.5, 0.5], rtol=1e-6)
    assert np.isnan(out[2]) and np.isnan(out[3])
    np.testing.assert_allclose(mndwi(g, n)[:2], out[:2])


@pytest.mark.parametrize("fn", [otsu_threshold, ki_threshold])
def test_thresholds_split_two_modes(fn):
    t = fn(two_modes(5000, 5000))
    assert -20.0 < t < -16.0


def test_ki_handles_unequal_classes_better_than_otsu():
    """A small, tight dark class beside a broad bright one: KI sits nearer the dark mode."""
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.normal(-24, 1.0, 1000), rng.normal(-12, 3.0, 20000)])
    truth = ((v < -20).sum())
    assert abs((v < ki_threshold(v)).sum() - truth) <= abs((v < otsu_threshold(v)).sum() - truth)


def test_fit_two_gaussians_and_ashman():
    w, mu, sd = fit_two_gaussians(two_modes(3000, 7000))
    np.testing.assert_allclose(w, [0.3, 0.7], atol=0.03)
    np.testing.assert_allclose(mu, [-22, -14], atol=0.3)
    assert ashman_d(mu, sd) > 4
    # one Gaussian: the fitted components overlap, D stays small
    w1, mu1, sd1 = fit_two_gaussians(np.random.default_rng(0).normal(-15, 2, 10000))
    assert ashman_d(mu1, sd1) < 2 or w1.min() < 0.1


@pytest.mark.parametrize("water_cols,expect_tiles", [(0, False), (256, False), (100, True)])
def test_bimodal_tiles(water_cols, expect_tiles):
    tiles = bimodal_tiles(sar_scene(water_cols), PLAUSIBLE["vh"], tile=64)
    assert bool(tiles) == expect_tiles
    for t in tiles:  # only tiles straddling the shore (columns 64-127) are bimodal
        assert t["col"] == 64


@pytest.mark.parametrize("water_cols", [0, 256])
def test_one_class_scene_gets_fixed_threshold(water_cols):
    t, details = scene_threshold(sar_scene(water_cols), "vh", "ki", tile=64)
    assert t == FALLBACK["vh"] and details["source"] == "fixed"


def test_sar_prior_maps_water_and_is_deterministic():
    vh = sar_scene(100)
    vv = vh + 7.0
    a = sar_prior(vv, vh, "vh", "ki", despeckle=3, tile=64)
    b = sar_prior(vv, vh, "vh", "ki", despeckle=3, tile=64)
    assert a.details["cross"]["source"] == "tiles"
    assert -22.0 < a.threshold < -17.0
    water = a.water()
    assert water[:, :95].mean() > 0.99 and water[:, 105:].mean() < 0.01
    np.testing.assert_array_equal(water, b.water())
    prob = a.probability()
    assert prob[:, :90].min() > 0.5 > prob[:, 110:].max()
    conf_w, conf_d = a.confident()
    assert not (conf_w & conf_d).any()
    both = sar_prior(vv, vh, "both", "otsu", despeckle=1, tile=64)
    assert both.water()[:, :95].mean() > 0.95


def test_sar_prior_keeps_nan_invalid():
    vh = sar_scene(100)
    vh[:10] = np.nan
    p = sar_prior(vh + 7, vh, tile=64)
    assert not p.valid[:10].any() and not p.water()[:10].any()
    assert p.probability()[0, 0] == pytest.approx(0.5)


def test_despeckle_db_nan_aware():
    db = np.full((9, 9), -10.0)
    db[4, 4] = np.nan
    out = despeckle_db(db, 3)
    assert np.isnan(out[4, 4])
    np.testing.assert_allclose(out[3, 3], -10.0)


def test_optical_prior_thresholds():
    green = np.full((8, 8), 0.1)
    nir = np.full((8, 8), 0.3)
    nir[:, :3] = 0.02  # water: NIR dark
    p = optical_prior(green, nir, "ndwi")
    assert p.water()[:, :3].all() and not p.water()[:, 3:].any()
    assert p.to_dict()["threshold"] == 0.0
    with pytest.raises(GeofloodsamError, match="index"):
        optical_prior(green, nir, "ndvi")


def test_real_s1_chip_prior(shared):
    """Sri-Lanka_534068 is almost all water: no bimodal split of one class in two."""
    path = shared("data/sen1floods11/S1Hand/Sri-Lanka_534068_S1Hand.tif")
    with rasterio.open(path) as ds:
        vv, vh = ds.read().astype(np.float64)
    with rasterio.open(shared("data/sen1floods11/LabelHand/Sri-Lanka_534068_LabelHand.tif")) as ds:
        label = ds.read(1)
    prior = sar_prior(vv, vh)
    valid = label >= 0
    assert prior.water()[valid & (label == 1)].mean() > 0.9


def test_guarded_gate_falls_back_to_the_prior_where_sam_disagrees():
    lg = np.full((64, 64), -5.0, np.float32)
    lg[10:20, 10:20] = 5.0
    lg[40:60, 30:60] = 5.0
    prior = sigmoid(lg)
    flooded = np.full((64, 64), 0.9, np.float32)  # SAM calls the whole tile water
    out, agree = fusion.guarded_gate(flooded, prior, lg)
    assert agree < 0.5
    np.testing.assert_array_equal(out, prior)
    good = prior.copy()
    out, agree = fusion.guarded_gate(good, prior, lg)
    assert agree == 1.0


def test_gate_takes_the_prior_where_it_is_confident():
    sam = np.array([0.9, 0.2, 0.6, 0.4], np.float32)
    prior = np.array([0.3, 0.8, 0.99, 0.01], np.float32)
    lg = np.log(prior / (1 - prior))
    np.testing.assert_allclose(fusion.gate(sam, prior, lg, margin=2.0), [0.9, 0.2, 0.99, 0.01])
    valid = np.array([True, True, False, True])
    np.testing.assert_allclose(fusion.gate(sam, prior, lg, 2.0, valid), [0.9, 0.2, 0.6, 0.01])


def test_bimodal_split_of_any_db_like_array_and_relative_scenes():
    """The split alone (for e.g. a log-ratio): a relative (shifted) scene gets the same split,
    shifted, with no plausible range; a one-class relative scene falls back to its own split."""
    scene = sar_scene(100)
    t, details = bimodal_split(scene, "ki", 64, (-30.0, -15.0), -20.0)
    assert details["source"] == "tiles" and -22.0 < t < -17.0
    shifted, d2 = bimodal_split(scene + 60.0, "ki", 64)
    assert d2["source"] == "tiles" and shifted == pytest.approx(t + 60.0, abs=0.2)
    flat, d3 = bimodal_split(sar_scene(0) + 60.0, "ki", 64)
    assert d3["source"] == "scene" and np.isfinite(flat)


def test_radar_prior_prefers_cross_pol_and_drops_small_regions():
    vh = sar_scene(100)
    vh[200:203, 200:203] = -30.0  # a 9 px dark blob in the land: under the minimum area
    vv = vh + 7.0
    both = radar_prior({"co": vv, "cross": vh}, despeckle=1, tile=64, min_area=20)
    assert both.details["polarisation"] == "cross" and both.method == "sar-cross-ki"
    assert not both.water()[201, 201] and both.water()[:, :90].mean() > 0.95
    co_only = radar_prior({"co": vv, "cross": None}, despeckle=1, tile=64)
    assert co_only.details["polarisation"] == "co"
    with pytest.raises(GeofloodsamError, match="co- or cross-polarised"):
        radar_prior({"co": None, "cross": None})


def test_small_regions_counts_8_connected_pixels():
    water = np.zeros((10, 10), bool)
    water[1, 1] = water[2, 2] = True  # diagonal neighbours: one region of 2
    water[5:9, 5:9] = True  # 16 px
    small = small_regions(water, 3)
    assert small[1, 1] and small[2, 2] and not small[5:9, 5:9].any()
