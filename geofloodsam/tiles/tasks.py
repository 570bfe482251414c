"""What a chunk of tile work is sent and what it returns: seeds, tile tasks, crops, results.

A :class:`ChunkJob` carries tile windows and :class:`Seed` s (prompts in tile pixels), never
pixels or weights, so that it can go to a Dask worker; a :class:`ChunkResult` returns, per
tile, a :class:`TileResult`: each seed's probability as a :class:`Crop`, and the
:class:`TileState` of the tile (how its embedding was had, or why it was not decoded).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np
from rasterio.windows import Window

from geofloodsam.geo.boxes import Box

if TYPE_CHECKING:
    from geofloodsam.tiles.grid import Tile
    from geofloodsam.tiles.growth import Appearance


@dataclass
class Seed:
    """Prompts for one object in one tile, in tile-local pixels."""

    obj: int  # internal object index, 1..N
    points: np.ndarray | None = None  # (K, 2)
    labels: np.ndarray | None = None  # (K,)
    box: Box | None = None  # a box prompt, tile pixels
    propagate: bool = False  # a point object that may grow into neighbouring tiles
    carried: bool = False  # seeded from a neighbour's mask, not from the user's prompts
    #: the object's colours, carried from the tile it was clicked in (None: taken here)
    appearance: Appearance | None = None
    multimask: bool = False  # a user's box: three candidates and a choice (points always)
    #: the scene's water like its clicks (``appearance``): the tile's promptless water of
    #: those colours, less the pieces that hold one of ``points`` (negatives, label 0)
    alike: bool = False


@dataclass
class TileTask:
    """One tile to decode: its window, its seeds, and whether it was encoded before."""

    index: int  # the tile's index in the scene's grid
    key: Hashable  # the embedding's key: unique to the run, the scene and the tile
    window: Window
    seeds: list[Seed]
    revisit: bool = False  # encoded in an earlier wave: decode on the kept embedding


@dataclass
class ChunkJob:
    """Tiles encoded together (one encoder batch) and the settings of their decoding."""

    tasks: list[TileTask]
    threshold: float = 0.5
    skip_nodata: bool = False  # tiles without a valid pixel are neither encoded nor decoded
    keep: bool = True  # keep the new embeddings: a later wave may come back to these tiles


@dataclass
class Crop:
    """A part of a tile: ``data`` at tile-local rows ``r0:r0+h``, columns ``c0:c0+w``.

    Outside it the value is 0 (False). An object's probability in a tile is handed over as
    the crop of its pixels above :data:`~geofloodsam.tiles.store.PROB_EPS`, so that a tile of
    many small objects costs their pixels, not a full tile per object.
    """

    r0: int
    c0: int
    data: np.ndarray  # (h, w)

    @property
    def r1(self) -> int:
        return self.r0 + self.data.shape[0]

    @property
    def c1(self) -> int:
        return self.c0 + self.data.shape[1]

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The crop pasted into zeros of ``shape`` (the tile)."""
        out = np.zeros(shape, self.data.dtype)
        out[self.r0 : self.r1, self.c0 : self.c1] = self.data
        return out


EMPTY = np.zeros((0, 0), np.float16)


class TileState(str, Enum):
    """How a tile of a chunk was had: encoded, reused, or why it was not decoded."""

    NEW = "new"  # encoded
    KEPT = "kept"  # decoded on its kept embedding
    AGAIN = "again"  # encoded again (a worker that did not keep its embedding)
    SKIPPED = "skipped"  # no valid pixel: neither encoded nor decoded
    FEATURELESS = "featureless"  # one colour after the stretch: nothing SAM could tell apart
    INDEX = "index"  # mapped by the scene's water prior alone, not encoded


@dataclass
class TileResult:
    """One decoded tile: ``probs`` None when it was not decoded (no valid pixel, featureless).

    ``probs[k]`` is seed k's water probability (float16, as the store keeps it) cropped to
    where it exceeds :data:`~geofloodsam.tiles.store.PROB_EPS` (an empty crop: nowhere);
    ``connected[k]`` the water connected to a growing seed's points, cropped the same way.
    """

    probs: list[Crop] | None
    connected: dict[int, Crop]  # seed position -> water connected to its points
    shape: tuple[int, int] = (0, 0)  # the tile's (h, w)
    state: TileState = TileState.NEW
    #: seed position -> the object's appearance taken here (user point seeds)
    appearances: dict[int, Appearance] = field(default_factory=dict)
    #: positions of user point seeds whose click SAM and the water index both call dry
    dry: list[int] = field(default_factory=list)


@dataclass
class ChunkResult:
    """The tiles of a :class:`ChunkJob`, in order, and the seconds spent on each step."""

    tiles: list[TileResult] = field(default_factory=list)
    read_s: float = 0.0
    encoder_s: float = 0.0
    decode_s: float = 0.0
    propagate_s: float = 0.0
    prompt_decodes: int = 0
    covered_seeds: int = 0  # point seeds inside water already decoded in their tile: skipped
    #: counts a work function adds up for the run record (e.g. the tiles of a fused run
    #: where SAM was used or the prior kept), summed over the scene by the engine
    counts: dict[str, int] = field(default_factory=dict)


def tile_local(points: np.ndarray, tile: Tile) -> np.ndarray:
    """Full-raster pixel ``points`` (x, y) in ``tile``'s own pixels."""
    return np.asarray(points, dtype=np.float64) - np.array([tile.x0, tile.y0], dtype=np.float64)
