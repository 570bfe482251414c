"""The deterministic tile grid, flush with the raster edge.

Tiles are ``tile_size`` square and start every ``stride = tile_size - overlap`` pixels; the
last tile of a row (column) starts at ``width - tile_size`` (``height - tile_size``) so that
it ends exactly on the raster edge: nothing is padded beyond the raster. A raster smaller
than a tile along an axis gets a single, smaller tile along that axis.

Coordinates are full-raster pixels: ``x`` = column, ``y`` = row, tile extents as half-open
``[x0, x1) x [y0, y1)`` (:class:`~geofloodsam.geo.boxes.Box`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from rasterio.windows import Window

from geofloodsam.errors import GeofloodsamError
from geofloodsam.geo.boxes import Box


def tile_starts(length: int, tile_size: int, stride: int) -> list[int]:
    """Start offsets of tiles along one axis of ``length`` pixels (flush with both ends)."""
    if length <= tile_size:
        return [0]
    last = length - tile_size
    starts = list(range(0, last, stride))
    starts.append(last)
    return starts


@dataclass(frozen=True)
class Tile:
    """One tile of the grid: grid position (``row``, ``col``) and pixel extent."""

    index: int
    row: int
    col: int
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def box(self) -> Box:
        """The tile's full-raster pixels as a box."""
        return Box(self.x0, self.y0, self.x1, self.y1)

    @property
    def window(self) -> Window:
        """The rasterio window of this tile."""
        return Window(self.x0, self.y0, self.width, self.height)

    def contains(self, x: float, y: float) -> bool:
        """Whether the full-raster pixel coordinate (x, y) lies inside the tile."""
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1

    def margin(self, x: float, y: float) -> float:
        """Distance from (x, y) to the nearest tile edge (negative outside)."""
        return min(x - self.x0, self.x1 - x, y - self.y0, self.y1 - y)


@dataclass(frozen=True)
class TileGrid:
    """The tile grid of a ``width`` x ``height`` raster."""

    width: int
    height: int
    tile_size: int = 1024
    overlap: int = 256

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise GeofloodsamError(f"raster is empty ({self.width}x{self.height} pixels).")
        if self.tile_size < 32:
            raise GeofloodsamError(
                f"--tile-size {self.tile_size} is too small: use at least 32 (default 1024)."
            )
        if not 0 <= self.overlap < self.tile_size:
            raise GeofloodsamError(
                f"--overlap {self.overlap} must be >= 0 and smaller than --tile-size "
                f"{self.tile_size} (default 256 for 1024)."
            )

    @property
    def stride(self) -> int:
        return self.tile_size - self.overlap

    @cached_property
    def xs(self) -> list[int]:
        """Column offsets of the tile columns."""
        return tile_starts(self.width, self.tile_size, self.stride)

    @cached_property
    def ys(self) -> list[int]:
        """Row offsets of the tile rows."""
        return tile_starts(self.height, self.tile_size, self.stride)

    @property
    def n_rows(self) -> int:
        return len(self.ys)

    @property
    def n_cols(self) -> int:
        return len(self.xs)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    @cached_property
    def tiles(self) -> tuple[Tile, ...]:
        """All tiles, row-major."""
        out = []
        for r, y0 in enumerate(self.ys):
            for c, x0 in enumerate(self.xs):
                out.append(
                    Tile(
                        index=r * self.n_cols + c,
                        row=r,
                        col=c,
                        x0=x0,
                        y0=y0,
                        x1=min(x0 + self.tile_size, self.width),
                        y1=min(y0 + self.tile_size, self.height),
                    )
                )
        return tuple(out)

    def tile(self, row: int, col: int) -> Tile:
        """The tile at grid position (row, col)."""
        return self.tiles[row * self.n_cols + col]

    def neighbours(self, tile: Tile) -> dict[str, Tile]:
        """The 4-neighbours of ``tile`` that exist, keyed by side (left, right, top, bottom)."""
        out = {}
        if tile.col > 0:
            out["left"] = self.tile(tile.row, tile.col - 1)
        if tile.col < self.n_cols - 1:
            out["right"] = self.tile(tile.row, tile.col + 1)
        if tile.row > 0:
            out["top"] = self.tile(tile.row - 1, tile.col)
        if tile.row < self.n_rows - 1:
            out["bottom"] = self.tile(tile.row + 1, tile.col)
        return out

    def tiles_overlapping(self, box: Box) -> list[Tile]:
        """Tiles that intersect the full-raster pixel ``box`` (row-major)."""
        return [
            t for t in self.tiles if t.x0 < box.x1 and box.x0 < t.x1 and t.y0 < box.y1
            and box.y0 < t.y1
        ]

    def best_tile(self, x: float, y: float) -> Tile:
        """The tile where (x, y) is farthest from an edge (ties: the first, row-major).

        A point outside the raster is clamped onto it first.
        """
        x = float(np.clip(x, 0, self.width - 1e-6))
        y = float(np.clip(y, 0, self.height - 1e-6))
        candidates = self.tiles_overlapping(Box(x, y, x + 1e-9, y + 1e-9))
        return max(candidates, key=lambda t: (t.margin(x, y), -t.index))

    def core(self, tile: Tile) -> Box:
        """The part of ``tile`` closer to its centre than to any neighbour's (a partition).

        Cores of all tiles tile the raster without overlap: the boundary between two
        neighbouring tiles is the middle of their overlap.
        """
        nb = self.neighbours(tile)
        x0 = (tile.x0 + nb["left"].x1) / 2 if "left" in nb else 0.0
        x1 = (tile.x1 + nb["right"].x0) / 2 if "right" in nb else float(self.width)
        y0 = (tile.y0 + nb["top"].y1) / 2 if "top" in nb else 0.0
        y1 = (tile.y1 + nb["bottom"].y0) / 2 if "bottom" in nb else float(self.height)
        return Box(x0, y0, x1, y1)
