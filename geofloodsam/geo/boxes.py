"""One box type for every rectangle of pixels: tiles, crops, row strips' spans, box prompts.

A :class:`Box` is half-open, ``[x0, x1) x [y0, y1)``, with ``x`` the column and ``y`` the
row, in the order rasterio's bounds and SAM's box prompts use (``x0, y0, x1, y1``). Integer
edges address pixels of an array (``array[box.rows, box.cols]``, or ``array[box.slices]``);
float edges are pixel edges of a box prompt (a pixel's centre at +0.5). Where a box is
relative to something (a tile, a strip), the name of the variable says so: ``box.shifted``
moves it between frames. Scaling into SAM's model frame is
:func:`geofloodsam.geo.transforms.boxes_pixel_to_model`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Box(NamedTuple):
    """Pixels ``[x0, x1) x [y0, y1)``: ``x`` the column, ``y`` the row (int or float edges)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def at(cls, x0: int, y0: int, shape: tuple[int, ...]) -> Box:
        """The box of an ``(h, w)`` array whose top-left pixel is at column ``x0``, row ``y0``."""
        return cls(x0, y0, x0 + shape[1], y0 + shape[0])

    @classmethod
    def around(cls, mask: np.ndarray) -> Box | None:
        """The integer box of the True pixels of a 2-D ``mask``, None if there are none."""
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
        return cls(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def rows(self) -> slice:
        """The rows ``y0:y1`` (integer boxes)."""
        return slice(self.y0, self.y1)

    @property
    def cols(self) -> slice:
        """The columns ``x0:x1`` (integer boxes)."""
        return slice(self.x0, self.x1)

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)``: index a 2-D array with it (integer boxes)."""
        return self.rows, self.cols

    def shifted(self, dx: float, dy: float) -> Box:
        """The box moved by ``dx`` columns and ``dy`` rows (into another frame)."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def union(self, other: Box) -> Box:
        """The smallest box holding both."""
        return Box(
            min(self.x0, other.x0), min(self.y0, other.y0),
            max(self.x1, other.x1), max(self.y1, other.y1),
        )

    def intersection(self, other: Box) -> Box | None:
        """The common part, None where they share no area."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        if x1 <= x0 or y1 <= y0:
            return None
        return Box(x0, y0, x1, y1)

    def contains(self, other: Box) -> bool:
        """Whether ``other`` lies wholly inside."""
        return (
            self.x0 <= other.x0 and self.y0 <= other.y0
            and other.x1 <= self.x1 and other.y1 <= self.y1
        )
