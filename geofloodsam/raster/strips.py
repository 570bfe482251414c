"""Row strips: the one way every full-raster pass (blending, writing, vectorising, scoring)
walks a raster, a strip of whole rows at a time, so memory stays flat whatever its size."""

from __future__ import annotations

from collections.abc import Iterator

#: pixels per strip: strips get fewer rows on wide rasters
STRIP_PIXELS = 1 << 22


def strip_rows(width: int, multiple: int = 1, low: int = 1, high: int | None = None) -> int:
    """Rows per strip of a raster ``width`` px wide: about :data:`STRIP_PIXELS` pixels, rounded
    down to a ``multiple`` of rows (block alignment) and kept within ``low..high``."""
    rows = (STRIP_PIXELS // max(width, 1)) // multiple * multiple
    rows = max(low, rows)
    return int(rows if high is None else min(high, rows))


def row_strips(height: int, rows: int) -> Iterator[tuple[int, int]]:
    """``(y0, y1)`` of consecutive strips of ``rows`` rows covering ``height`` rows."""
    for y0 in range(0, height, rows):
        yield y0, min(y0 + rows, height)
