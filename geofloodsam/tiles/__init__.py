"""Tiles: the grid over a scene and the work done per tile, wave after wave.

- :mod:`~geofloodsam.tiles.grid`: the deterministic overlapping grid, flush with the edge.
- :mod:`~geofloodsam.tiles.work`: one chunk of tiles read, encoded and decoded for its seeds
  (runs in-process or on a Dask worker); ``LocalExecutor``; kept embeddings.
- :mod:`~geofloodsam.tiles.engine`: seeds from prompts, waves of tile jobs, growth of objects
  into neighbour tiles.
- :mod:`~geofloodsam.tiles.store`: the on-disk per-tile, per-object probabilities.

May import: ``errors``, ``files``, ``geo``, ``raster``, ``model``.
"""
