"""Stitching: tile probabilities blended into one seamless mask, row band by row band.

- :mod:`~geofloodsam.stitch.blend`: blend weights (never zero, flat at the raster edge), the
  band blender, and the writer of the mask / probability COGs.

May import: ``errors``, ``files``, ``geo``, ``raster``, ``tiles``.
"""
