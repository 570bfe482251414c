"""Tiles: the grid over a scene and the work done per tile, wave after wave.

- :mod:`~geofloodsam.tiles.grid`: the deterministic overlapping grid, flush with the edge.
- :mod:`~geofloodsam.tiles.work`: one chunk of tiles read, encoded and decoded for its seeds
  (runs in-process or on a Dask worker); kept embeddings.
- :mod:`~geofloodsam.tiles.executor`: the ``Executor`` contract of whatever runs the tile
  work, and ``LocalExecutor``, which runs it in this process.
- :mod:`~geofloodsam.tiles.tasks`: what a chunk of tile work is sent and returns (seeds, crops,
  tile states).
- :mod:`~geofloodsam.tiles.engine`: seeds from prompts, waves of tile jobs, the tile store.
- :mod:`~geofloodsam.tiles.growth`: how a prompted object grows: the choice among SAM's
  candidates by the evidence at the clicks, the water it may follow, its crop in a tile,
  seeds into neighbours and their admission to the next wave.
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
    "Seed": "tasks",
    "TileTask": "tasks",
    "ChunkJob": "tasks",
    "ChunkResult": "tasks",
    "TileResult": "tasks",
    "TileState": "tasks",
    "run_chunk": "work",
    "Executor": "executor",
    "LocalExecutor": "executor",
    "SceneSpec": "executor",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
