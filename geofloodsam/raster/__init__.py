"""Reading rasters: a scene opened once, read window by window, never whole.

- :mod:`~geofloodsam.raster.scene`: ``Scene`` (band selection, nodata and internal masks,
  validity), ``--bands`` / ``--stretch`` parsing, and the scene-level stretch to 8-bit that
  every tile shares (no per-tile contrast, so no seams).
- :mod:`~geofloodsam.raster.strips`: the row strips every full-raster pass walks.

May import: ``errors``, ``files``, ``geo``.
"""
