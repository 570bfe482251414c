"""The on-disk store of per-tile, per-object water probabilities that the tile waves fill.

Each object's probability in each tile it was decoded in is kept cropped to where it is not
~0 (float16 ``.npy`` files), never in a full-scene array; :mod:`geofloodsam.stitch` blends
them into the mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from geofloodsam.tiles.grid import Tile


class TileStore:
    """Per-object water probabilities of decoded tiles, one cropped ``.npy`` each on disk.

    An entry is the probability of one object in one tile, cropped to the pixels above
    ``eps`` (the rest is 0), so small objects cost little. Decoding the same object in the
    same tile again (a later wave) merges by per-pixel maximum. :meth:`covering` tells which
    tiles an object was decoded in: blending an object uses those tiles only, so a tile that
    was decoded for other objects never votes "dry" on it.
    """

    def __init__(self, directory: str | Path, prob_dtype=np.float16, eps: float = 1 / 512) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prob_dtype = np.dtype(prob_dtype)
        self.eps = eps
        #: (tile index, object) -> crop (r0, c0, r1, c1) in tile pixels, or None if empty
        self._crops: dict[tuple[int, int], tuple[int, int, int, int] | None] = {}
        self._tiles: dict[int, list[int]] = {}  # tile -> objects decoded there
        self._object_tiles: dict[int, list[int]] = {}  # object -> tiles it was decoded in

    def __contains__(self, tile: Tile | int) -> bool:
        return _index(tile) in self._tiles

    def __len__(self) -> int:
        return len(self._tiles)

    @property
    def indices(self) -> list[int]:
        """Indices of the tiles that were decoded."""
        return sorted(self._tiles)

    @property
    def objects(self) -> list[int]:
        """Every object decoded somewhere."""
        return sorted(self._object_tiles)

    def covering(self, obj: int) -> list[int]:
        """Tiles ``obj`` was decoded in."""
        return self._object_tiles.get(obj, [])

    def objects_in(self, tile: Tile | int) -> list[int]:
        """Objects decoded in ``tile``."""
        return self._tiles.get(_index(tile), [])

    def crop(self, tile: Tile | int, obj: int) -> tuple[int, int, int, int] | None:
        """Tile-local (r0, c0, r1, c1) of the stored crop, None where all below ``eps``."""
        return self._crops.get((_index(tile), obj))

    def _path(self, index: int, obj: int) -> Path:
        return self.directory / f"t{index}_o{obj}.npy"

    def update(self, tile: Tile, obj: int, prob: np.ndarray) -> None:
        """Merge the (h, w) water probability of object ``obj`` decoded in ``tile``."""
        if prob.shape != (tile.height, tile.width):
            raise ValueError(f"tile {tile.index} is {tile.height}x{tile.width}, got {prob.shape}")
        key = (tile.index, obj)
        old = self._crops.get(key)
        if old is not None:
            full = np.zeros(prob.shape, np.float32)
            r0, c0, r1, c1 = old
            full[r0:r1, c0:c1] = np.load(self._path(*key))
            prob = np.maximum(prob, full)
        boxes = ndimage.find_objects((prob > self.eps).astype(np.uint8))
        crop = None
        if boxes:
            rows, cols = boxes[0]
            crop = (rows.start, cols.start, rows.stop, cols.stop)
            r0, c0, r1, c1 = crop
            np.save(self._path(*key), np.asarray(prob[r0:r1, c0:c1], dtype=self.prob_dtype))
        self._crops[key] = crop
        if key[1] not in self._tiles.setdefault(tile.index, []):
            self._tiles[tile.index].append(obj)
            self._object_tiles.setdefault(obj, []).append(tile.index)

    def read(self, tile: Tile | int, obj: int, rows: slice, cols: slice) -> np.ndarray:
        """float32 probability of ``obj`` in tile-local ``rows`` x ``cols`` (0 outside crop)."""
        index = _index(tile)
        h, w = rows.stop - rows.start, cols.stop - cols.start
        out = np.zeros((h, w), np.float32)
        crop = self._crops.get((index, obj))
        if crop is None:
            return out
        r0, c0, r1, c1 = crop
        a0, a1 = max(rows.start, r0), min(rows.stop, r1)
        b0, b1 = max(cols.start, c0), min(cols.stop, c1)
        if a0 < a1 and b0 < b1:
            data = np.load(self._path(index, obj), mmap_mode="r")
            out[a0 - rows.start : a1 - rows.start, b0 - cols.start : b1 - cols.start] = data[
                a0 - r0 : a1 - r0, b0 - c0 : b1 - c0
            ]
        return out

    def prob_at(self, tile: Tile, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Highest stored probability over objects at full-raster pixel coordinates."""
        xs = np.asarray(xs, dtype=np.float64)
        cols = np.clip(np.floor(xs).astype(int) - tile.x0, 0, tile.width - 1)
        rows = np.clip(np.floor(np.asarray(ys)).astype(int) - tile.y0, 0, tile.height - 1)
        out = np.zeros(xs.shape, np.float32)
        for obj in self.objects_in(tile):
            for k, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
                value = self.read(tile, obj, slice(r, r + 1), slice(c, c + 1))[0, 0]
                out[k] = max(out[k], value)
        return out


def _index(tile: Tile | int) -> int:
    return tile.index if isinstance(tile, Tile) else int(tile)
