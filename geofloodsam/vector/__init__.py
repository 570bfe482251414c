"""Vectors in and out: prompts read from vector files, water polygons written to GeoPackage.

- :mod:`~geofloodsam.vector.prompts`: points and boxes from GeoJSON / GeoPackage / Shapefile in
  any CRS, into a raster's pixels.
- :mod:`~geofloodsam.vector.polygonize`: the mask, strip by strip, into dissolved polygons (no
  seams along bands or tiles), their attributes and the GeoPackage.

May import: ``errors``, ``files``, ``geo``, ``raster``.
"""
