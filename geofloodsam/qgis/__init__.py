"""QGIS: outputs styled for QGIS, and the QGIS plugin that runs geofloodsam from QGIS.

- :mod:`~geofloodsam.qgis.style`: the mask's colour table and ``.qml``, GeoPackage 1.2 with a
  default ``layer_styles`` entry (standard library and rasterio only).
- ``plugin/``: the QGIS plugin (Processing provider ``geofloodsam``). It runs inside QGIS's own
  Python and imports nothing of geofloodsam: it calls this environment's ``geofloodsam``
  command as a subprocess. ``geofloodsam qgis install`` copies it into a QGIS profile.

May import: ``errors``, ``progress``, ``files``.
"""
