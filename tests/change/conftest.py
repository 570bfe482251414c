"""Small before/after pairs on one grid: Sentinel-2 and Sentinel-1 rasters whose water is known.

Before: a lake and a pond. After: the lake, a flood beside it, the pond gone (receded). Mapped
with ``method="index"`` (the water index alone, no SAM) they run in a second; the tiny SAM
runs the same pipeline where a model is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geofloodsam.raster.sensors import S2_L1C

SIDE = 200
CRS = "EPSG:32633"
TRANSFORM = from_origin(500000, 4000000, 10, 10)


def water_of(stage: str, side: int = SIDE) -> np.ndarray:
    """True = water: a lake (both), a flood patch (after), a pond (before)."""
    yy, xx = np.mgrid[:side, :side]
    water = (yy - 70) ** 2 + (xx - 80) ** 2 < 40**2
    if stage == "after":
        water |= (yy > 110) & (yy < 170) & (xx > 40) & (xx < 130)
    else:
        water |= (yy - 150) ** 2 + (xx - 165) ** 2 < 18**2
    return water


def write_s2(path: Path, water: np.ndarray, seed: int = 2, crs=CRS, transform=TRANSFORM) -> Path:
    """13-band int16 L1C-like reflectance x 10000: water dark in NIR/SWIR, bright in green."""
    rng = np.random.default_rng(seed)
    data = np.empty((13, *water.shape), np.int16)
    for i, name in enumerate(S2_L1C):
        land, wet = (2500, 300) if name in ("B8", "B8A", "B11", "B12") else (900, 1100)
        data[i] = np.where(water, wet, land) + rng.integers(-150, 150, water.shape)
    profile = dict(driver="GTiff", width=water.shape[1], height=water.shape[0], count=13,
                   dtype="int16", crs=crs, transform=transform)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def write_s1(path: Path, water: np.ndarray, seed: int = 1) -> Path:
    """2-band float32 VV, VH in dB: water -22/-28, land -8/-15, speckled."""
    rng = np.random.default_rng(seed)
    vv = np.where(water, -22.0, -8.0) + rng.normal(0, 1.5, water.shape)
    vh = np.where(water, -28.0, -15.0) + rng.normal(0, 1.5, water.shape)
    profile = dict(driver="GTiff", width=water.shape[1], height=water.shape[0], count=2,
                   dtype="float32", crs=CRS, transform=TRANSFORM)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.stack([vv, vh]).astype(np.float32))
        ds.descriptions = ("VV", "VH")
    return path


def write_naip(path: Path, water: np.ndarray, seed: int = 3) -> Path:
    """4-band uint8 R, G, B, NIR: water dark, dark in NIR."""
    rng = np.random.default_rng(seed)
    bands = [np.where(water, wet, land) + rng.integers(-8, 8, water.shape)
             for land, wet in ((120, 40), (130, 60), (100, 70), (180, 20))]
    profile = dict(driver="GTiff", width=water.shape[1], height=water.shape[0], count=4,
                   dtype="uint8", crs=CRS, transform=TRANSFORM)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.stack(bands).astype(np.uint8))
    return path


@pytest.fixture
def s2_pair(tmp_path) -> tuple[Path, Path]:
    """(after, before) Sentinel-2 scenes on one grid."""
    return (write_s2(tmp_path / "after.tif", water_of("after"), 2),
            write_s2(tmp_path / "before.tif", water_of("before"), 5))


@pytest.fixture
def s1_pair(tmp_path) -> tuple[Path, Path]:
    """(after, before) Sentinel-1 scenes on one grid."""
    return (write_s1(tmp_path / "s1_after.tif", water_of("after"), 1),
            write_s1(tmp_path / "s1_before.tif", water_of("before"), 4))


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)
