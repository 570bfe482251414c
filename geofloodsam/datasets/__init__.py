"""Data sets: image/mask pairs and GeoTIFF chips, prompts derived from truth, sample scenes.

- :mod:`~geofloodsam.datasets.reading`: folders with ``splits.csv``, images + masks, or chips
  with label rasters.
- :mod:`~geofloodsam.datasets.truth_prompts`: the default prompts of a truth mask (box of all
  water, deepest point of the largest body).
- :mod:`~geofloodsam.datasets.sample_scenes`: the deterministic sample scenes of
  ``sample_tiles/``.

May import: ``errors``, ``files``, ``geo``, ``raster``, ``vector``, ``weights``, ``model``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "Sample": "reading",
    "open_dataset": "reading",
    "default_prompts": "truth_prompts",
    "deepest_point": "truth_prompts",
    "make_samples": "sample_scenes",
    "SceneRecipe": "sample_scenes",
    "synthetic_scene": "sample_scenes",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
