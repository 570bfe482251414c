"""raster_io: windowed reads, band selection, masks and the scene-level stretch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.scene import (
    Scene,
    Stretch,
    compute_stretch,
    parse_bands,
    parse_stretch,
    sample_windows,
)

TRANSFORM = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 5000000.0)


def write_tif(
    path: Path,
    data: np.ndarray,
    crs: str | None = "EPSG:32633",
    nodata=None,
    mask: np.ndarray | None = None,
    overviews: tuple[int, ...] = (),
) -> Path:
    """Write (B, h, w) as a tiled GeoTIFF, with an optional internal mask and overviews."""
    profile = dict(
        driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype.name, transform=TRANSFORM, nodata=nodata, tiled=True,
        blockxsize=128, blockysize=128,
    )
    if crs is not None:
        profile["crs"] = crs
    if data.shape[0] == 4:  # plain 4 bands (R, G, B, NIR), not RGB + alpha
        profile["photometric"] = "minisblack"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if mask is not None:
                dst.write_mask(mask.astype(np.uint8) * 255)
            if overviews:
                dst.build_overviews(list(overviews), Resampling.nearest)
    return path


def random_scene(dtype: str, bands: int, h: int = 300, w: int = 400, seed: int = 0) -> np.ndarray:
    """Random data spanning a range typical of ``dtype``."""
    rng = np.random.default_rng(seed)
    lo, hi = {"uint8": (0, 255), "uint16": (0, 10000), "int16": (-500, 3000),
              "float32": (-1.0, 1.0)}[dtype]
    data = rng.uniform(lo, hi, size=(bands, h, w))
    return data.astype(dtype)


class ReadRecorder:
    """Wraps a dataset and records the size of every read, to prove no whole-scene read."""

    def __init__(self, ds) -> None:
        self._ds = ds
        self.reads: list[tuple[int, int]] = []

    def __getattr__(self, name):
        return getattr(self._ds, name)

    def _record(self, kwargs) -> None:
        if kwargs.get("out_shape") is not None:
            self.reads.append(tuple(kwargs["out_shape"][-2:]))
        elif kwargs.get("window") is not None:
            win = kwargs["window"]
            self.reads.append((int(win.height), int(win.width)))
        else:
            self.reads.append((self._ds.height, self._ds.width))

    def read(self, *args, **kwargs):
        self._record(kwargs)
        return self._ds.read(*args, **kwargs)

    def read_masks(self, *args, **kwargs):
        self._record(kwargs)
        return self._ds.read_masks(*args, **kwargs)


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
@pytest.mark.parametrize(("count", "default_bands"), [(1, (1,)), (3, (1, 2, 3)), (4, (1, 2, 3))])
def test_windowed_read_matches_pixels(tmp_path, dtype, count, default_bands):
    data = random_scene(dtype, count)
    path = write_tif(tmp_path / "s.tif", data)
    window = Window(37, 21, 150, 90)
    with Scene.open(path) as scene:
        assert scene.bands == default_bands
        assert (scene.width, scene.height) == (400, 300)
        assert scene.crs.to_epsg() == 32633 and scene.transform == TRANSFORM
        stretch = compute_stretch(scene)
        rgb, valid = scene.read_rgb(window, stretch)
    assert rgb.shape == (90, 150, 3) and rgb.dtype == np.uint8
    assert valid.shape == (90, 150) and valid.all()
    raw = data[[b - 1 for b in default_bands], 21:111, 37:187]
    assert np.array_equal(rgb, stretch.apply(raw))
    if count == 1:
        assert np.array_equal(rgb[..., 0], rgb[..., 2])
    if dtype == "uint8":  # used as is
        assert stretch.method == "none (uint8)"
        expected = np.moveaxis(raw, 0, -1)
        assert np.array_equal(rgb, np.repeat(expected, 3, axis=-1) if count == 1 else expected)


def test_band_selection_picks_and_repeats(tmp_path):
    data = np.stack([np.full((40, 50), v, np.uint8) for v in (10, 20, 30, 40)])
    path = write_tif(tmp_path / "s.tif", data)
    with Scene.open(path, bands="4,3,2") as scene:
        rgb, _ = scene.read_rgb(Window(0, 0, 50, 40), compute_stretch(scene))
        assert tuple(rgb[0, 0]) == (40, 30, 20)
    with Scene.open(path, bands=[2]) as scene:
        rgb, _ = scene.read_rgb(Window(0, 0, 50, 40), compute_stretch(scene))
        assert tuple(rgb[5, 5]) == (20, 20, 20)


def test_nodata_is_invalid_and_ignored_by_the_stretch(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(1000, 2001, size=(3, 300, 400)).astype(np.uint16)
    data[:, :, :250] = 0  # most of the scene is nodata
    path = write_tif(tmp_path / "s.tif", data, nodata=0)
    with Scene.open(path) as scene:
        stretch = compute_stretch(scene)
        rgb, valid = scene.read_rgb(Window(200, 0, 100, 300), stretch)
        assert np.array_equal(scene.read_valid(Window(200, 0, 100, 300)), valid)
    assert not valid[:, :50].any() and valid[:, 50:].all()
    assert (rgb[:, :50] == 0).all()
    # percentiles of the valid values only: nowhere near the nodata 0
    assert np.all(stretch.lows > 1000) and np.all(stretch.lows < 1050)
    assert np.all(stretch.highs > 1950) and np.all(stretch.highs <= 2000)


def test_internal_mask_is_respected(tmp_path):
    data = random_scene("uint8", 3, 200, 200)
    mask = np.ones((200, 200), bool)
    mask[50:120, 30:90] = False
    path = write_tif(tmp_path / "s.tif", data, mask=mask)
    with Scene.open(path) as scene:
        assert scene.nodata is None
        rgb, valid = scene.read_rgb(Window(0, 0, 200, 200), compute_stretch(scene))
        assert np.array_equal(scene.read_valid(Window(0, 0, 200, 200)), mask)
    assert np.array_equal(valid, mask)
    assert (rgb[~mask] == 0).all()


@pytest.mark.parametrize(
    ("dtype", "nodata", "masked", "expected"),
    [("uint8", None, False, True), ("uint16", 0, False, False), ("uint8", None, True, False),
     ("float32", None, False, False)],
)
def test_all_valid_scene_skips_the_masks(tmp_path, dtype, nodata, masked, expected):
    """No nodata, internal mask or float NaN: every pixel valid, without reading masks."""
    data = random_scene(dtype, 3, 100, 120)
    mask = np.ones((100, 120), bool)
    mask[:10] = False
    path = write_tif(tmp_path / "s.tif", data, nodata=nodata, mask=mask if masked else None)
    window = Window(10, 0, 60, 50)
    with Scene.open(path) as scene:
        assert scene.all_valid is expected
        rgb, valid = scene.read_rgb(window, compute_stretch(scene))
        assert valid.shape == (50, 60) and valid.dtype == bool
        assert np.array_equal(scene.read_valid(window), valid)
    if masked:
        assert not valid[:10].any() and valid[10:].all()
    elif nodata is None:
        assert valid.all()


def test_alpha_band_is_the_mask(tmp_path):
    data = random_scene("uint8", 4, 60, 60)
    data[3] = 255
    data[3, :, :20] = 0
    path = tmp_path / "rgba.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=60, height=60, count=4, dtype="uint8",
        crs="EPSG:32633", transform=TRANSFORM, photometric="rgb", alpha="yes",
    ) as dst:
        dst.write(data)
    with Scene.open(path) as scene:
        rgb, valid = scene.read_rgb(Window(0, 0, 60, 60), compute_stretch(scene))
    assert not valid[:, :20].any() and valid[:, 20:].all()
    assert np.array_equal(rgb[:, 20:], np.moveaxis(data[:3, :, 20:], 0, -1))


@pytest.mark.parametrize("nodata", [None, float("nan")])
def test_nan_pixels_are_invalid(tmp_path, nodata):
    data = random_scene("float32", 3, 120, 160)
    data[1, 10:20, 30:50] = np.nan  # NaN in one band is enough
    path = write_tif(tmp_path / "s.tif", data, nodata=nodata)
    with Scene.open(path) as scene:
        stretch = compute_stretch(scene)
        window = Window(0, 0, 160, 120)
        rgb, valid = scene.read_rgb(window, stretch)
        assert np.array_equal(scene.read_valid(window), valid)
    assert np.isfinite(stretch.lows).all() and np.isfinite(stretch.highs).all()
    assert not valid[10:20, 30:50].any() and valid.sum() == 120 * 160 - 200


# --------------------------------------------------------------------------- stretch
def test_stretch_from_sampled_windows_never_reads_the_whole_scene(tmp_path):
    rng = np.random.default_rng(2)
    h, w = 1500, 1700
    data = np.stack([rng.uniform(100 * b, 100 * b + 3000, (h, w)) for b in (1, 2, 3)])
    path = write_tif(tmp_path / "s.tif", data.astype(np.uint16))
    with Scene.open(path) as scene:
        scene.ds = ReadRecorder(scene.ds)
        stretch = compute_stretch(scene, sample_windows=16)
        reads = scene.ds.reads
    assert "16 sampled windows" in stretch.method
    assert reads and all(rh * rw <= 512 * 512 for rh, rw in reads)
    expected = np.percentile(data.reshape(3, -1), [2, 98], axis=1)  # whole-scene truth
    assert np.allclose(stretch.lows, expected[0], atol=15)
    assert np.allclose(stretch.highs, expected[1], atol=15)


def test_stretch_from_overviews(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 4000, (3, 1100, 1300)).astype(np.uint16)
    path = write_tif(tmp_path / "s.tif", data, overviews=(2, 4))
    with Scene.open(path) as scene:
        scene.ds = ReadRecorder(scene.ds)
        stretch = compute_stretch(scene)
        reads = scene.ds.reads
    # 1/2 is the coarsest level still >= 512 px a side (1/4 is 325 x 275)
    assert stretch.method == "percentile-2-98 from overview level 1 (1/2)"
    assert reads == [(550, 650)]  # the data at the overview's size; all valid: no mask read
    assert np.allclose(stretch.lows, 80, atol=15) and np.allclose(stretch.highs, 3920, atol=15)


def test_sample_windows_cover_the_scene_deterministically():
    wins = sample_windows(3000, 2000, 16)
    assert len(wins) == 16 and wins == sample_windows(3000, 2000, 16)
    assert min(w.col_off for w in wins) == 0 and max(w.col_off + w.width for w in wins) == 3000
    assert min(w.row_off for w in wins) == 0 and max(w.row_off + w.height for w in wins) == 2000
    assert sample_windows(300, 200, 16) == [Window(0, 0, 300, 200)]  # small: one window


def test_fixed_and_uint8_stretches(tmp_path):
    data = np.stack([np.arange(256, dtype=np.uint8).reshape(16, 16)] * 3)
    path = write_tif(tmp_path / "s.tif", data)
    with Scene.open(path) as scene:
        assert compute_stretch(scene).is_identity
        fixed = compute_stretch(scene, "0,127.5")
        assert fixed.method == "fixed 0,127.5"
        rgb, _ = scene.read_rgb(Window(0, 0, 16, 16), fixed)
    flat = rgb[..., 0].ravel()
    assert flat[0] == 0 and flat[64] == 128 and (flat[128:] == 255).all()


@pytest.mark.parametrize("spec", ["auto", "0,127.5"])
def test_stretch_of_an_all_valid_scene_without_percentiles_reads_nothing(tmp_path, spec):
    """uint8 (auto) and fixed stretches need no values: only nodata scenes are sampled."""
    data = random_scene("uint8", 3, 100, 120)
    for nodata, expected_reads in ((None, False), (0, True)):
        path = write_tif(tmp_path / f"s{nodata}.tif", data, nodata=nodata)
        with Scene.open(path) as scene:
            scene.ds = ReadRecorder(scene.ds)
            compute_stretch(scene, spec)
            assert bool(scene.ds.reads) is expected_reads


def test_stretch_apply_and_round_trip():
    stretch = Stretch(np.array([0.0]), np.array([100.0]), "fixed 0,100")
    data = np.array([[[-5.0, 0.0, 50.0, 100.0, 200.0, np.nan]]])
    rgb = stretch.apply(data)
    assert rgb.shape == (1, 6, 3)
    assert rgb[0, :, 0].tolist() == [0, 0, 128, 255, 255, 0]
    again = Stretch.from_dict(stretch.to_dict())
    assert again.method == stretch.method and np.array_equal(again.lows, stretch.lows)


def test_one_constant_band_is_stretched_without_dividing_by_zero(tmp_path):
    rng = np.random.default_rng(4)
    data = rng.uniform(0, 1000, (3, 100, 100)).astype(np.float32)
    data[2] = 7.0
    path = write_tif(tmp_path / "s.tif", data)
    with Scene.open(path) as scene, np.errstate(all="raise"):
        stretch = compute_stretch(scene)
        rgb, _ = scene.read_rgb(Window(0, 0, 100, 100), stretch)
    assert stretch.lows[2] == stretch.highs[2] == 7.0
    assert "min-max for band(s) 3" in stretch.method
    assert (rgb[..., 2] == 0).all() and rgb[..., 0].std() > 50


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("", None), ("4,3,2", (4, 3, 2)), (" 1 ", (1,)), ([3, 2, 1], (3, 2, 1))],
)
def test_parse_bands(text, expected):
    assert parse_bands(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, "auto"), ("auto", "auto"), ("AUTO", "auto"), ("0,3000", (0.0, 3000.0)),
     ("-1.5, 2e3", (-1.5, 2000.0)), ((10, 20), (10.0, 20.0))],
)
def test_parse_stretch(text, expected):
    assert parse_stretch(text) == expected


# --------------------------------------------------------------------------- bad input
def assert_one_line(excinfo, *words: str) -> None:
    message = excinfo.value.message
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("text", "word"),
    [("a,b", "comma-separated"), ("1,2", "1 band"), ("1,2,3,4", "1 band"), ("0", "start at 1")],
)
def test_bad_bands(text, word):
    with pytest.raises(GeofloodsamError) as excinfo:
        parse_bands(text)
    assert_one_line(excinfo, word)


@pytest.mark.parametrize("text", ["abc", "1", "1,2,3", "5,1", "3,3", "nan,3", "1,inf"])
def test_bad_stretch(text):
    with pytest.raises(GeofloodsamError) as excinfo:
        parse_stretch(text)
    assert_one_line(excinfo, "--stretch")


def test_missing_file(tmp_path):
    with pytest.raises(GeofloodsamError) as excinfo:
        Scene.open(tmp_path / "nope.tif")
    assert_one_line(excinfo, "not found")


def test_folder_is_not_a_raster(tmp_path):
    with pytest.raises(GeofloodsamError) as excinfo:
        Scene.open(tmp_path)
    assert_one_line(excinfo, "is a folder")


def test_corrupt_raster(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00this is not really a tiff" * 10)
    with pytest.raises(GeofloodsamError) as excinfo:
        Scene.open(path)
    assert_one_line(excinfo, "cannot read", "as a raster")


def test_raster_without_crs(tmp_path):
    path = write_tif(tmp_path / "s.tif", random_scene("uint8", 3, 20, 20), crs=None)
    with pytest.raises(GeofloodsamError) as excinfo:
        Scene.open(path)
    assert_one_line(excinfo, "has no CRS")


def test_unknown_band_names_the_bands_that_exist(tmp_path):
    path = write_tif(tmp_path / "s.tif", random_scene("uint16", 4, 20, 20))
    with pytest.raises(GeofloodsamError) as excinfo:
        Scene.open(path, bands="5,3,2")
    assert_one_line(excinfo, "band 5", "bands 1-4", "--bands")


def test_two_bands_need_explicit_bands(tmp_path):
    path = write_tif(tmp_path / "s.tif", random_scene("float32", 2, 20, 20))
    with pytest.raises(GeofloodsamError) as excinfo:
        Scene.open(path)
    assert_one_line(excinfo, "2 bands", "--bands")
    with Scene.open(path, bands="2") as scene:  # an explicit choice works
        assert scene.bands == (2,)


def test_unsupported_dtype(tmp_path):
    path = write_tif(tmp_path / "s.tif", np.ones((3, 10, 10), np.complex64))
    with pytest.raises(GeofloodsamError) as excinfo:
        Scene.open(path)
    assert_one_line(excinfo, "complex64", "not supported")


@pytest.mark.parametrize("how", ["nodata", "mask", "nan"])
def test_all_nodata_scene(tmp_path, how):
    data = np.zeros((3, 700, 800), np.float32)
    kwargs = {}
    if how == "nodata":
        kwargs["nodata"] = 0
    elif how == "mask":
        kwargs["mask"] = np.zeros((700, 800), bool)
    else:
        data[:] = np.nan
    path = write_tif(tmp_path / "s.tif", data, **kwargs)
    with Scene.open(path) as scene:
        with pytest.raises(GeofloodsamError) as excinfo:
            compute_stretch(scene)
    assert_one_line(excinfo, "only nodata")


def test_data_hidden_from_the_sampled_windows_is_still_found(tmp_path):
    """A mostly-nodata scene whose data the window grid misses is not called empty."""
    data = np.zeros((1, 4000, 4000), np.uint8)
    data[:, 800:860, 800:860] = 50  # a small patch between the sampled windows
    path = write_tif(tmp_path / "s.tif", data, nodata=0)
    with Scene.open(path) as scene:
        assert not any(
            w.col_off <= 830 < w.col_off + w.width or w.row_off <= 830 < w.row_off + w.height
            for w in sample_windows(scene.width, scene.height)
        )
        stretch = compute_stretch(scene, "0,100")
    assert stretch.method == "fixed 0,100"


def test_every_band_constant(tmp_path):
    path = write_tif(tmp_path / "s.tif", np.full((3, 50, 50), 1234, np.uint16))
    with Scene.open(path) as scene:
        with pytest.raises(GeofloodsamError) as excinfo:
            compute_stretch(scene)
        assert compute_stretch(scene, (0, 2000)).method == "fixed 0,2000"  # explicit is fine
    assert_one_line(excinfo, "constant", "--stretch")
