"""The on-disk store of per-tile, per-object water probabilities that the tile waves fill.

Each object's probability in each tile it was decoded in is kept cropped to where it is not
~0 (float16 ``.npy`` files), never in a full-scene array; :mod:`geofloodsam.stitch` blends
them into the mask. The tile work hands over such crops directly
(:meth:`TileStore.update_crop`), so that many small objects cost what their pixels cost, not a
full tile each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from geofloodsam.geo.boxes import Box
from geofloodsam.tiles.grid import Tile

#: probabilities at or below this are 0 in the store (and outside every crop)
PROB_EPS = 1 / 512


class TileStore:
    """Per-object water probabilities of decoded tiles, one cropped ``.npy`` each on disk.

    An entry is the probability of one object in one tile, cropped to the pixels above
    ``eps`` (the rest is 0), so small objects cost little. Decoding the same object in the
    same tile again (a later wave) merges by per-pixel maximum. :meth:`covering` tells which
    tiles an object was decoded in: blending an object uses those tiles only, so a tile that
    was decoded for other objects never votes "dry" on it.
    """

    def __init__(
        self, directory: str | Path, prob_dtype=np.float16, eps: float = PROB_EPS
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prob_dtype = np.dtype(prob_dtype)
        self.eps = eps
        #: (tile index, object) -> the crop's box in tile pixels, or None if empty
        self._crops: dict[tuple[int, int], Box | None] = {}
        self._tiles: dict[int, list[int]] = {}  # tile -> objects decoded there
        self._object_tiles: dict[int, list[int]] = {}  # object -> tiles it was decoded in
        #: object -> full-raster rows [y0, y1) of its crops (for blending strip by strip)
        self._object_rows: dict[int, tuple[int, int]] = {}

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

    def object_rows(self, obj: int) -> tuple[int, int] | None:
        """Full-raster rows ``[y0, y1)`` that ``obj``'s crops span (None: nothing stored)."""
        return self._object_rows.get(obj)

    def crop_box(self, tile: Tile | int, obj: int) -> Box | None:
        """The tile-local box of the stored crop, None where all below ``eps``."""
        return self._crops.get((_index(tile), obj))

    def _path(self, index: int, obj: int) -> Path:
        return self.directory / f"t{index}_o{obj}.npy"

    def update(self, tile: Tile, obj: int, prob: np.ndarray) -> None:
        """Merge the (h, w) water probability of object ``obj`` decoded in ``tile``."""
        if prob.shape != (tile.height, tile.width):
            raise ValueError(f"tile {tile.index} is {tile.height}x{tile.width}, got {prob.shape}")
        boxes = ndimage.find_objects((prob > self.eps).astype(np.uint8))
        if not boxes:
            self.update_crop(tile, obj, 0, 0, np.zeros((0, 0), np.float32))
            return
        rows, cols = boxes[0]
        self.update_crop(tile, obj, rows.start, cols.start, prob[rows, cols])

    def update_crop(self, tile: Tile, obj: int, r0: int, c0: int, crop: np.ndarray) -> None:
        """Merge ``obj``'s probability in ``tile`` given as ``crop`` at tile-local (r0, c0).

        The pixels outside the crop are 0 (at most ``eps``); an empty crop records that the
        object was decoded there and found nothing. A later decode is merged by maximum.
        """
        key = (tile.index, obj)
        old = self._crops.get(key)
        crop = np.asarray(crop)
        if crop.size == 0:
            box = None
        else:
            box = Box.at(c0, r0, crop.shape)
            if not Box(0, 0, tile.width, tile.height).contains(box):
                raise ValueError(f"crop {box} does not fit tile {tile.index}")
        if old is not None and box is not None:  # merge by maximum over the union
            u = old.union(box)
            merged = np.zeros((u.height, u.width), np.float32)
            merged[old.shifted(-u.x0, -u.y0).slices] = np.load(self._path(*key))
            part = merged[box.shifted(-u.x0, -u.y0).slices]
            np.maximum(part, crop, out=part)
            box, crop = u, merged
        elif box is None:
            box = old
            crop = None
        if crop is not None and box is not None:
            np.save(self._path(*key), np.asarray(crop, dtype=self.prob_dtype))
        self._crops[key] = box
        if box is not None:
            y0, y1 = tile.y0 + box.y0, tile.y0 + box.y1
            rows = self._object_rows.get(obj)
            self._object_rows[obj] = (y0, y1) if rows is None else (
                min(rows[0], y0), max(rows[1], y1)
            )
        if key[1] not in self._tiles.setdefault(tile.index, []):
            self._tiles[tile.index].append(obj)
            self._object_tiles.setdefault(obj, []).append(tile.index)

    def read(self, tile: Tile | int, obj: int, rows: slice, cols: slice) -> np.ndarray:
        """float32 probability of ``obj`` in tile-local ``rows`` x ``cols`` (0 outside crop)."""
        index = _index(tile)
        h, w = rows.stop - rows.start, cols.stop - cols.start
        out = np.zeros((h, w), np.float32)
        box = self._crops.get((index, obj))
        if box is None:
            return out
        a0, a1 = max(rows.start, box.y0), min(rows.stop, box.y1)
        b0, b1 = max(cols.start, box.x0), min(cols.stop, box.x1)
        if a0 < a1 and b0 < b1:
            data = np.load(self._path(index, obj), mmap_mode="r")
            out[a0 - rows.start : a1 - rows.start, b0 - cols.start : b1 - cols.start] = data[
                a0 - box.y0 : a1 - box.y0, b0 - box.x0 : b1 - box.x0
            ]
        return out

    def prob_at(
        self, tile: Tile, xs: np.ndarray, ys: np.ndarray, obj: int | None = None
    ) -> np.ndarray:
        """Highest stored probability over objects (or of ``obj``) at full-raster pixels."""
        xs = np.asarray(xs, dtype=np.float64)
        cols = np.clip(np.floor(xs).astype(int) - tile.x0, 0, tile.width - 1)
        rows = np.clip(np.floor(np.asarray(ys)).astype(int) - tile.y0, 0, tile.height - 1)
        out = np.zeros(xs.shape, np.float32)
        objs = [o for o in self.objects_in(tile) if self._crops.get((tile.index, o))]
        if obj is not None:
            objs = [o for o in objs if o == obj]
        if not objs or not len(xs):
            return out
        x0, y0, x1, y1 = np.array([self._crops[(tile.index, o)] for o in objs]).T  # (K,) each
        r, c = rows[:, None], cols[:, None]
        inside = (
            (y0[None, :] <= r) & (r < y1[None, :]) & (x0[None, :] <= c) & (c < x1[None, :])
        )  # (points, objects): only crops holding a point are read
        for k, j in zip(*np.nonzero(inside), strict=True):
            data = np.load(self._path(tile.index, objs[j]), mmap_mode="r")
            out[k] = max(out[k], float(data[rows[k] - y0[j], cols[k] - x0[j]]))
        return out


def _index(tile: Tile | int) -> int:
    return tile.index if isinstance(tile, Tile) else int(tile)
