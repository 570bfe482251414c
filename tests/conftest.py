"""Shared fixtures: paths to ../shared, the real MobileSAM model and a tiny random SAM.

Tests that need the shared real data call :func:`need` (or use the fixtures below). They
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
