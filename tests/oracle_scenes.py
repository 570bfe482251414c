"""Synthetic scenes with known water and an *oracle* SAM, for tests that run ``segment``.

The oracle (:class:`OracleModel`) calls dark pixels water and selects the dark areas a prompt
points at, so the right answer of a run is known exactly; the scenes are bright textured land
with dark water (:func:`dark_scene`) on a 10 m UTM grid (:data:`ORIGIN`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import Point

from geofloodsam.geo.transforms import pixel_to_world
from geofloodsam.model.sam import Embedding, Prediction

UTM = "EPSG:32614"
ORIGIN = (500000.0, 5200000.0)
OUTPUT_SUFFIXES = ("_mask.tif", "_mask.qml", "_flood.gpkg", "_run.json")


class OracleModel:
    """A stand-in SAM: water is dark pixels; a prompt selects the dark areas it points at.

    Points select the 4-connected dark components holding a positive point; a box selects
    the dark pixels inside it. It records every tile it encodes.
    """

    image_size = 1024
    batch_size = 2

    def __init__(self) -> None:
        self.encoded: list[bytes] = []  # a digest of each encoded image
        self.decodes = 0

    def info(self) -> dict:
        return {"model": "oracle", "decoder": "pretrained"}

    def encode_batch(self, images):
        out = []
        for img in images:
            self.encoded.append(hashlib.sha1(img.tobytes()).digest())
            feats = torch.from_numpy(np.ascontiguousarray(img.mean(axis=-1), dtype=np.float32))
            out.append(Embedding(feats, img.shape[:2], img.shape[:2]))
        return out

    def decode(self, embedding, points=None, point_labels=None, boxes=None, mask_input=None,
               multimask=False):
        self.decodes += 1
        dark = embedding.features.float().numpy() < 60
        labels, _ = ndimage.label(dark)
        masks = []
        if boxes is not None:
            for x0, y0, x1, y1 in np.asarray(boxes).reshape(-1, 4):
                m = np.zeros_like(dark)
                m[int(round(y0)) : int(round(y1)), int(round(x0)) : int(round(x1))] = True
                masks.append(m & dark)
        else:
            pts = np.asarray(points).reshape(len(points), -1, 2)
            labs = np.asarray(point_labels).reshape(pts.shape[:2])
            for p, lab in zip(pts, labs, strict=True):
                pos = p[lab == 1]
                hit = labels[pos[:, 1].astype(int), pos[:, 0].astype(int)]
                masks.append(np.isin(labels, hit[hit > 0]))
        n, c = len(masks), 3 if multimask else 1
        logits = np.where(np.stack(masks), 10.0, -10.0).astype(np.float32)[:, None]
        logits = np.repeat(logits, c, axis=1)
        low_res = np.zeros((n, c, 256, 256), np.float32)
        return Prediction(logits, np.ones((n, c), np.float32), low_res)


def write_raster(path: Path, data: np.ndarray, crs=UTM, res: float = 10.0, nodata=None) -> Path:
    """Write (B, h, w) ``data`` as a GeoTIFF."""
    transform = from_origin(*ORIGIN, res, res)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as ds:
        ds.write(data)
    return path


def dark_scene(width: int, height: int, water: np.ndarray) -> np.ndarray:
    """(3, h, w) uint8: bright textured land, dark water where ``water``."""
    rng = np.random.default_rng(0)
    land = 150 + rng.integers(0, 40, (3, height, width))
    lake = 20 + rng.integers(0, 20, (3, height, width))
    return np.where(water[None], lake, land).astype(np.uint8)


def ellipse(width: int, height: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


def write_points(path: Path, pixels, crs=UTM, labels=None, objects=None, to_crs=None) -> Path:
    """Points at pixel (x, y) of the ORIGIN/10 m grid, optionally reprojected."""
    transform = from_origin(*ORIGIN, 10.0, 10.0)
    geoms = [Point(pixel_to_world(transform, x, y)) for x, y in pixels]
    data = {}
    if labels is not None:
        data["label"] = labels
    if objects is not None:
        data["object"] = objects
    gdf = gpd.GeoDataFrame(data, geometry=geoms, crs=crs)
    if to_crs is not None:
        gdf = gdf.to_crs(to_crs)
    gdf.to_file(path)
    return path


def read_mask(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def leftovers(outdir: Path) -> list[str]:
    return sorted(p.name for p in outdir.iterdir()) if outdir.exists() else []


def write_big_lake(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 700x560 scene whose lake spans 3x3 of its tiles (tile 192, overlap 48)."""
    w, h = 700, 560
    water = ellipse(w, h, 330, 290, 190, 140)
    scene = write_raster(tmp_path / "lake.tif", dark_scene(w, h, water))
    return scene, water


def previous_outputs(out: Path, stem: str) -> dict[str, bytes]:
    """Outputs of an earlier run (made-up bytes), to check that a failed run keeps them."""
    out.mkdir(parents=True, exist_ok=True)
    old = {}
    for suffix in ("_mask.tif", "_mask.qml", "_flood.gpkg"):
        (out / f"{stem}{suffix}").write_bytes(f"previous {suffix}".encode())
        old[stem + suffix] = f"previous {suffix}".encode()
    return old
