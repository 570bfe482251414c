"""Data sets: image/mask pairs and GeoTIFF chips, prompts derived from truth, sample scenes.

- :mod:`~geofloodsam.datasets.reading`: folders with ``splits.csv``, images + masks, or chips
  with label rasters.
- :mod:`~geofloodsam.datasets.truth_prompts`: the default prompts of a truth mask (box of all
  water, deepest point of the largest body).
- :mod:`~geofloodsam.datasets.sample_scenes`: the deterministic sample scenes of
  ``sample_tiles/``.

May import: ``errors``, ``files``, ``geo``, ``raster``, ``vector``, ``weights``, ``model``.
"""
