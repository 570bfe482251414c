"""Stitching: tile probabilities blended into one seamless mask, row strip by row strip.

- :mod:`~geofloodsam.stitch.blend`: blend weights (never zero, flat at the raster edge), the
  strip blender, and the writer of the mask / probability COGs.

May import: ``errors``, ``files``, ``geo``, ``raster``, ``tiles``.
"""
