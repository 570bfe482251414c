"""Data set layouts: splits.csv folders, images/ + masks/, GeoTIFF chips; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from geofloodsam.datasets.reading import (
    Sample,
    make_split,
    open_dataset,
)
from geofloodsam.errors import GeofloodsamError


def _write_tif(path: Path, data: np.ndarray, nodata=None) -> None:
    data = data if data.ndim == 3 else data[None]
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs="EPSG:4326",
        transform=from_origin(10.0, 50.0, 1e-4, 1e-4),
        nodata=nodata,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)


def write_chip_set(root: Path, n: int = 4, size: int = 32) -> Path:
    """Sen1Floods11 layout: S2Hand/<chip>_S2Hand.tif (13 bands) + LabelHand/<chip>_LabelHand.tif."""
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(500, 3000, (13, size, size)).astype(np.int16)
        label = np.zeros((size, size), dtype=np.int16)
        label[: size // 2] = 1
        label[:, -4:] = -1
        _write_tif(root / "S2Hand" / f"Chip_{i}_S2Hand.tif", image, nodata=0)
        _write_tif(root / "LabelHand" / f"Chip_{i}_LabelHand.tif", label)
    return root


# ---------------------------------------------------------------------------- layouts
def test_split_file_layout(tmp_path, write_photo_set, photos):
    root = write_photo_set(tmp_path / "ds", ["train", "train", "val", "test"])
    everything = open_dataset(root)
    assert [s.split for s in everything] == ["train", "train", "val", "test"]
    train = open_dataset(root, "train")
    assert [s.id for s in train] == ["0", "1"]
    image = train[0].load_image()
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, photos.image(30, 40, 0))
    water, valid = train[0].load_truth()
    assert water.shape == (30, 40) and valid.all()
    assert water[:, :20].all() and water[:, 20].all() and not water[:, 21:].any()


def test_split_file_path_given_directly(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["train", "val"])
    assert [s.id for s in open_dataset(root / "splits.csv", "val")] == ["1"]


@pytest.mark.parametrize(
    "mode,fmt", [("P", "GIF"), ("RGBA", "WEBP"), ("L", "PNG"), ("RGB", "JPEG")]
)
def test_real_world_formats_behind_jpg(tmp_path, mode, fmt, write_photo_set, photos):
    root = write_photo_set(tmp_path / "ds", ["train"])
    image = Image.fromarray(photos.image(30, 40, 0)).convert(mode)
    image.save(root / "images" / "0.jpg", format=fmt)
    image = open_dataset(root)[0].load_image()
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8


def test_images_masks_folders_get_a_seeded_split(tmp_path, write_photo_set):
    root = tmp_path / "plain"
    write_photo_set(root, ["train"] * 10)
    (root / "splits.csv").unlink()
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    first = open_dataset(root, seed=3, splits_out=out_a)
    again = open_dataset(root, seed=3, splits_out=out_b)
    assert [s.split for s in first] == [s.split for s in again]
    assert out_a.read_text() == out_b.read_text()
    counts = {k: sum(s.split == k for s in first) for k in ("train", "val", "test")}
    assert counts == {"train": 6, "val": 2, "test": 2}
    # the written split file is itself a data set that reads back the same
    reread = open_dataset(out_a)
    assert [(s.id, s.split) for s in reread] == [(s.id, s.split) for s in first]


def test_make_split_depends_on_seed_only_through_the_ids():
    ids = [str(i) for i in range(20)]
    assert make_split(ids, 1) == make_split(list(reversed(ids)), 1)
    assert make_split(ids, 1) != make_split(ids, 2)


def test_geotiff_chips_with_label_rasters(tmp_path):
    root = write_chip_set(tmp_path / "s1f")
    samples = open_dataset(root, bands="4,3,2", splits_out=tmp_path / "s.csv")
    assert sorted(s.id for s in samples) == [f"Chip_{i}" for i in range(4)]
    sample = samples[0]
    image = sample.load_image()
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255  # 2-98 percentile stretch of the chip
    water, valid = sample.load_truth()
    assert not valid[:, -4:].any() and valid[:, :-4].all()  # label -1 is nodata
    assert water[:16, :-4].all() and not water[16:].any() and not water[:, -4:].any()


def test_geotiff_image_nodata_is_invalid(tmp_path):
    root = write_chip_set(tmp_path / "s1f", n=1)
    path = root / "S2Hand" / "Chip_0_S2Hand.tif"
    with rasterio.open(path, "r+") as ds:
        data = ds.read()
        data[:, 0, :] = 0  # the file's nodata value
        ds.write(data)
    water, valid = open_dataset(root, bands="4,3,2", splits_out=tmp_path / "s.csv")[0].load_truth()
    assert not valid[0].any() and not water[0].any() and valid[1:, :-4].all()


def test_chips_read_as_composite_unless_bands_or_stretch_are_given(tmp_path):
    """Without --bands/--stretch a chip is its sensor's fixed composite (here 13 bands L1C:
    B11, B8, B4 at reflectance 0-0.4); with them, the plain selection and per-chip stretch."""
    from geofloodsam.datasets.reading import _read_chip_rgb

    root = write_chip_set(tmp_path / "s1f", n=1)
    composite = open_dataset(root, splits_out=tmp_path / "s.csv")[0]
    legacy = open_dataset(root, bands="4,3,2", splits_out=tmp_path / "s.csv")[0]
    assert composite.reads_composite and not legacy.reads_composite
    assert composite.sensor_name == "s2" and composite.sensor_info().composite == "swir"
    with rasterio.open(composite.image) as ds:
        raw = ds.read([12, 8, 4]).astype(np.float64) / 1e4
    expected = (np.clip(raw / 0.4 * 255.0, 0, 255) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(composite.load_image(), np.moveaxis(expected, 0, -1))
    np.testing.assert_array_equal(
        legacy.load_image(), _read_chip_rgb(legacy.image, (4, 3, 2), "auto")[0]
    )
    assert composite.image_key() != legacy.image_key()
    stretched = open_dataset(root, stretch="0,3000", splits_out=tmp_path / "s.csv")[0]
    assert not stretched.reads_composite


def test_chip_folders_with_both_sensors(tmp_path, write_chip_set):
    root = write_chip_set(tmp_path / "s1f", ("s1", "s2"))
    assert "--sensor s1 or s2" in _raises("holds both S1Hand/ and S2Hand/", root)
    for sensor, folder in (("s1", "S1Hand"), ("s2", "S2Hand")):
        samples = open_dataset(root, sensor=sensor, splits_out=tmp_path / "s.csv")
        assert {s.image.parent.name for s in samples} == {folder}
        again = open_dataset(root / folder, splits_out=tmp_path / "s.csv")
        assert [s.image for s in again] == [s.image for s in samples]
    _raises("--sensor s2 needs 12-13 Sentinel-2 bands", root / "S1Hand", sensor="s2",
            splits_out=tmp_path / "s.csv")


def test_unusable_chips_say_why(tmp_path, write_chip_set, write_photo_set):
    root = write_chip_set(tmp_path / "s1f", ("s1",), unusable=True)
    why = {s.id: s.unusable() for s in open_dataset(root, splits_out=tmp_path / "s.csv")}
    assert why == {"Alpha_1": None, "Beta_2": None,
                   "Blank_3": "its label has no valid pixel (all -1 / nodata)",
                   "Void_4": "its image is all nodata/NaN"}
    photo = open_dataset(write_photo_set(tmp_path / "ds", ["train"]))[0]
    assert photo.unusable() is None and photo.sensor_name == "rgb"


def test_image_key_changes_with_the_file(tmp_path, write_photo_set, photos):
    root = write_photo_set(tmp_path / "ds", ["train"])
    sample = open_dataset(root)[0]
    key = sample.image_key()
    assert key == open_dataset(root)[0].image_key()
    Image.fromarray(photos.image(30, 40, 9)).save(root / "images" / "0.jpg", format="PNG")
    assert Sample("0", "train", sample.image, sample.mask).image_key() != key


@pytest.mark.slow
def test_shared_flood_dataset(shared):
    root = shared("data/flood-area-segmentation")
    samples = open_dataset(root)
    counts = {k: sum(s.split == k for s in samples) for k in ("train", "val", "test")}
    assert counts == {"train": 160, "val": 35, "test": 35}
    water, valid = samples[0].load_truth()
    assert water.shape == samples[0].load_image().shape[:2] and 0 < water.mean() < 1


# ---------------------------------------------------------------------------- bad input
def _raises(match: str, *args, **kwargs) -> str:
    with pytest.raises(GeofloodsamError, match=match) as info:
        open_dataset(*args, **kwargs)
    message = info.value.format_message()
    assert "\n" not in message
    return message


def test_missing_split_file_and_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    _raises("not a data set", tmp_path / "empty")
    _raises("does not exist", tmp_path / "nowhere")


def test_missing_split_columns(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["train"])
    (root / "splits.csv").write_text("id,image,split\n0,images/0.jpg,train\n")
    assert "mask" in _raises("lacks column", root)


def test_split_file_without_rows_or_with_unknown_split(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["train"])
    (root / "splits.csv").write_text("id,image,mask,split\n")
    _raises("lists no images", root)
    (root / "splits.csv").write_text("id,image,mask,split\n0,images/0.jpg,masks/0.png,holdout\n")
    _raises("unknown split", root)


def test_missing_image_file(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["train"])
    (root / "images" / "0.jpg").unlink()
    _raises("does not exist", root)


def test_image_mask_size_mismatch(tmp_path, write_photo_set, photos):
    root = write_photo_set(tmp_path / "ds", ["train", "val"])
    Image.fromarray(photos.mask(31, 40)).save(root / "masks" / "1.png")
    assert "sample 1" in _raises("40x30 but mask 1.png is 40x31", root)


def test_unreadable_image(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["train", "val"])
    (root / "images" / "1.jpg").write_bytes(b"not an image at all")
    _raises("cannot read image .*1.jpg", root)


def test_empty_mask_set(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["train"])
    (root / "splits.csv").unlink()
    for p in (root / "masks").iterdir():
        p.unlink()
    _raises("no image/mask pairs", root)


def test_split_without_images(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["train", "train"])
    _raises("no images in split 'val'", root, "val")


def test_images_without_masks_are_named_not_dropped(tmp_path, write_photo_set):
    root = tmp_path / "plain"
    write_photo_set(root, ["train"] * 4)
    (root / "splits.csv").unlink()
    (root / "masks" / "2.png").unlink()
    (root / "masks" / "3.png").unlink()
    with pytest.raises(GeofloodsamError) as excinfo:
        open_dataset(root)
    message = excinfo.value.message
    assert "\n" not in message and "2 image(s)" in message
    assert "2.jpg, 3.jpg" in message and "have no mask" in message
