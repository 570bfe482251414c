"""Shared fixtures: paths to ../shared, the real MobileSAM model and a tiny random SAM.

Tests that need the shared real data use the fixtures below (``shared("data/...")``). They
skip with a clear reason when the data is absent, except under ``GEOFLOODSAM_REQUIRE_SHARED=1``
(set by ``.ci/run``), where a missing file fails the test instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOFLOODSAM_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
DATA = SHARED / "data"

# Real weights come from ../shared/models: no download in tests.
if MODELS.is_dir():
    os.environ.setdefault("GEOFLOODSAM_WEIGHTS_DIR", str(MODELS))


def need(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise skip (locally) or fail (in CI)."""
    if path.exists():
        return path
    reason = f"shared data {path} is absent (expected ../shared beside the repo)"
    if os.environ.get("GEOFLOODSAM_REQUIRE_SHARED") == "1":
        pytest.fail(reason + "; GEOFLOODSAM_REQUIRE_SHARED=1 forbids skipping")
    pytest.skip(reason)


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
