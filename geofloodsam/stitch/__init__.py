"""Stitching: tile probabilities blended into one seamless mask, row strip by row strip.

- :mod:`~geofloodsam.stitch.blend`: blend weights (never zero, flat at the raster edge), the
  strip blender, and the writer of the mask / probability COGs.

May import: ``errors``, ``files``, ``geo``, ``raster``, ``tiles``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "Strip": "blend",
    "blend_strip": "blend",
    "iter_strips": "blend",
    "tile_weights": "blend",
    "write_blended": "blend",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
