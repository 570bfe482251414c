"""Shared fixtures: paths to ../shared, the real MobileSAM model and a tiny random SAM.

Tests that need the shared real data use the fixtures below (``shared("data/...")``). They
skip with a clear reason when the data is absent, except under ``GEOFLOODSAM_REQUIRE_SHARED=1``
(set by ``.ci/run``), where a missing file fails the test instead.
"""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: the reference encoder path, for tests that compare numbers (``load_model``'s defaults
#: are the commands': ``auto``, which is OpenVINO on a CPU where it is installed)
FP32_TORCH = {"precision": "fp32", "runtime": "torch"}

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOFLOODSAM_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
DATA = SHARED / "data"

# Real weights come from ../shared/models: no download in tests.
if MODELS.is_dir():
    os.environ.setdefault("GEOFLOODSAM_WEIGHTS_DIR", str(MODELS))


def _absent(reason: str) -> None:
    """Skip (locally) or fail (in CI: ``GEOFLOODSAM_REQUIRE_SHARED=1``) for a missing need."""
    if os.environ.get("GEOFLOODSAM_REQUIRE_SHARED") == "1":
        pytest.fail(reason + "; GEOFLOODSAM_REQUIRE_SHARED=1 forbids skipping")
    pytest.skip(reason)


def need(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise skip (locally) or fail (in CI)."""
    if not path.exists():
        _absent(f"shared data {path} is absent (expected ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def absent():
    """``absent(reason)``: skip a test whose requirement (e.g. QGIS) is missing; fail in CI."""
    return _absent


@pytest.fixture(scope="session")
def shared():
    """``shared("data/geo/x.tif")``: a path under ../shared, which the test needs (see need)."""
    return lambda relative: need(SHARED / relative)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``."""
    return need(DATA)


@pytest.fixture(scope="session")
def mobile_sam_path() -> Path:
    """The official MobileSAM checkpoint in ``../shared/models``."""
    return need(MODELS / "mobile_sam.pt")


@pytest.fixture(scope="session")
def vit_t(mobile_sam_path: Path):
    """The real MobileSAM (vit_t) with its pretrained decoder, on the CPU."""
    from geofloodsam.model.sam import load_model

    return load_model("vit_t", checkpoint=mobile_sam_path, device="cpu", **FP32_TORCH)


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny randomly initialised SAM (same code path as the real ones)."""
    from geofloodsam.model.sam import load_model

    return load_model("tiny", device="cpu", **FP32_TORCH)


# --------------------------------------------------------------------------- fast by default
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (real weights, whole scenes): the full suite, as CI",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ``--slow`` (or an explicit ``-m``), the slow tests are deselected."""
    if config.getoption("--slow") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


# --------------------------------------------------------------------------- shared helpers
def _photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(h: int, w: int) -> np.ndarray:
    """8-bit mask: water (255) in the left half, one anti-aliased column of 128 and 127."""
    m = np.zeros((h, w), dtype=np.uint8)
    m[:, : w // 2] = 255
    m[:, w // 2] = 128
    m[:, w // 2 + 1] = 127
    return m


def _write_photo_set(root: Path, splits: list[str], size=(30, 40)) -> Path:
    """images/<id>.jpg (PNG bytes), masks/<id>.png and a splits.csv."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    with open(root / "splits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "mask", "split"])
        for i, split in enumerate(splits):
            Image.fromarray(_photo(*size, i)).save(root / "images" / f"{i}.jpg", format="PNG")
            Image.fromarray(_mask(*size)).save(root / "masks" / f"{i}.png")
            w.writerow([i, f"images/{i}.jpg", f"masks/{i}.png", split])
    return root


def _write_raster(path: Path, data: np.ndarray, nodata=None, descriptions=None) -> Path:
    """A GeoTIFF (EPSG:4326, 1e-4 degree pixels) of ``data`` (B, H, W) or (H, W)."""
    import rasterio
    from rasterio.transform import from_origin

    data = data if data.ndim == 3 else data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
        count=data.shape[0], dtype=data.dtype, crs="EPSG:4326",
        transform=from_origin(10.0, 50.0, 1e-4, 1e-4), nodata=nodata,
    ) as ds:
        ds.write(data)
        for i, d in enumerate(descriptions or ()):
            ds.set_band_description(i + 1, d)
    return path


#: the water of the synthetic chips: chip name -> (H, W) bool from the chip side
CHIP_WATER = {
    "Alpha_1": lambda n: np.broadcast_to(np.arange(n)[None, :] < n // 2, (n, n)),
    "Beta_2": lambda n: np.broadcast_to(np.arange(n)[:, None] < n // 3, (n, n)),
}
#: rows of every synthetic chip's label that are -1 (no data), and its image's nodata rows
CHIP_LABEL_NODATA = slice(0, 3)
CHIP_IMAGE_NODATA = slice(-4, None)


def _write_chip_set(
    root: Path, sensors=("s1",), unusable: bool = False, size: int = 64
) -> Path:
    """Sen1Floods11 layout with the chips of :data:`CHIP_WATER`, known answers.

    ``s1``: ``S1Hand/<chip>_S1Hand.tif``, 2 float32 bands VV, VH in dB (water -20 / -25 dB,
    land -8 / -12 dB, +-0.5 dB noise), NaN rows :data:`CHIP_IMAGE_NODATA`. ``s2``:
    ``S2Hand/<chip>_S2Hand.tif``, 13 int16 bands B1..B12 (L1C order; water: B3 900 DN,
    B8 300; land: B3 600, B8 2500), nodata 0 in those rows. ``LabelHand/<chip>_LabelHand.tif``:
    int16 1 water, 0 dry, -1 in rows :data:`CHIP_LABEL_NODATA`. ``unusable`` adds
    ``Blank_3`` (label all -1) and ``Void_4`` (image all nodata).
    """
    rng = np.random.default_rng(5)
    chips = dict(CHIP_WATER)
    if unusable:
        chips["Blank_3"] = CHIP_WATER["Alpha_1"]
        chips["Void_4"] = CHIP_WATER["Beta_2"]
    for name, shape in chips.items():
        water = np.array(shape(size))
        label = water.astype(np.int16)
        label[CHIP_LABEL_NODATA] = -1
        if name == "Blank_3":
            label[:] = -1
        _write_raster(root / "LabelHand" / f"{name}_LabelHand.tif", label)
        if "s1" in sensors:
            vv = np.where(water, -20.0, -8.0) + rng.normal(0, 0.5, water.shape)
            vh = np.where(water, -25.0, -12.0) + rng.normal(0, 0.5, water.shape)
            s1 = np.stack([vv, vh]).astype(np.float32)
            s1[:, CHIP_IMAGE_NODATA] = np.nan
            if name == "Void_4":
                s1[:] = np.nan
            _write_raster(root / "S1Hand" / f"{name}_S1Hand.tif", s1, nodata=float("nan"),
                          descriptions=("VV", "VH"))
        if "s2" in sensors:
            s2 = rng.integers(400, 1200, (13, size, size)).astype(np.int16)
            s2[2] = np.where(water, 900, 600)  # B3
            s2[7] = np.where(water, 300, 2500)  # B8
            s2[11] = np.where(water, 100, 2000)  # B11
            s2[:, CHIP_IMAGE_NODATA] = 0
            if name == "Void_4":
                s2[:] = 0
            _write_raster(root / "S2Hand" / f"{name}_S2Hand.tif", s2, nodata=0)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec_cluster(bad_options: dict):
    """Two workers named 'good' and 'bad'; the bad one started with ``bad_options``."""
    from distributed import Nanny, Scheduler, SpecCluster

    workers = {
        "good": {"cls": Nanny, "options": {"nthreads": 1, "dashboard": False}},
        "bad": {"cls": Nanny, "options": {"nthreads": 1, "dashboard": False, **bad_options}},
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40)



@pytest.fixture
def write_photo_set():
    """``write_photo_set(root, splits, size=(30, 40))``: a tiny photo data set with splits.csv."""
    return _write_photo_set


@pytest.fixture
def write_chip_set():
    """``write_chip_set(root, sensors=("s1",), unusable=False, size=64)``: synthetic
    Sen1Floods11 chips with known water (see :func:`_write_chip_set`)."""
    return _write_chip_set


@pytest.fixture
def chip_water():
    """``chip_water[name](size)``: the water of the synthetic chips; label and image nodata
    rows as ``(label_rows, image_rows)`` slices under ``chip_water["nodata"]``."""
    return {**CHIP_WATER, "nodata": (CHIP_LABEL_NODATA, CHIP_IMAGE_NODATA)}


@pytest.fixture
def free_port():
    """``free_port()``: a free TCP port on 127.0.0.1."""
    return _free_port


@pytest.fixture
def spec_cluster():
    """``spec_cluster(bad_options)``: a Dask cluster of workers 'good' and 'bad'."""
    return _spec_cluster


class _Photos:
    """Pixels of the tiny photo data set: ``image(h, w, seed)``, ``mask(h, w)``."""

    image = staticmethod(_photo)
    mask = staticmethod(_mask)


@pytest.fixture
def photos() -> _Photos:
    """The pixels :func:`write_photo_set` writes, to compare with what is read back."""
    return _Photos()


@pytest.fixture
def big_lake(tmp_path):
    """(path, water) of a 700x560 oracle scene whose lake spans 3x3 of its tiles (tile 192,
    overlap 48); see ``tests/oracle_scenes.py``."""
    from oracle_scenes import write_big_lake

    return write_big_lake(tmp_path)
