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

    return load_model("vit_t", checkpoint=mobile_sam_path, device="cpu")


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny randomly initialised SAM (same code path as the real ones)."""
    from geofloodsam.model.sam import load_model

    return load_model("tiny", device="cpu")


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
