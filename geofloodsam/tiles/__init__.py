"""Tiles: the grid over a scene and the work done per tile, wave after wave.

- :mod:`~geofloodsam.tiles.grid`: the deterministic overlapping grid, flush with the edge.
- :mod:`~geofloodsam.tiles.work`: one chunk of tiles read, encoded and decoded for its seeds
  (runs in-process or on a Dask worker); ``LocalExecutor``; kept embeddings.
- :mod:`~geofloodsam.tiles.engine`: seeds from prompts, waves of tile jobs, growth of objects
  into neighbour tiles.
- :mod:`~geofloodsam.tiles.growth`: how a prompted object grows: the choice among SAM's
  candidates by the evidence at the clicks, the water it may follow, seeds into neighbours.
- :mod:`~geofloodsam.tiles.store`: the on-disk per-tile, per-object probabilities.

May import: ``errors``, ``files``, ``geo``, ``raster``, ``model``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "Tile": "grid",
    "TileGrid": "grid",
    "TileStore": "store",
    "TileEngine": "engine",
    "ObjectInfo": "engine",
    "build_seeds": "engine",
    "Seed": "work",
    "TileTask": "work",
    "ChunkJob": "work",
    "ChunkResult": "work",
    "TileResult": "work",
    "run_chunk": "work",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
