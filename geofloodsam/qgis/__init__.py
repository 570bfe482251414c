"""QGIS: outputs styled for QGIS, and the QGIS plugin that runs geofloodsam from QGIS.

- :mod:`~geofloodsam.qgis.style`: the mask's colour table and ``.qml``, GeoPackage 1.2 with a
  default ``layer_styles`` entry (standard library and rasterio only).
- ``plugin/``: the QGIS plugin (Processing provider ``geofloodsam``). It runs inside QGIS's own
  Python and imports nothing of geofloodsam: it calls this environment's ``geofloodsam``
  command as a subprocess. ``geofloodsam qgis install`` copies it into a QGIS profile.

May import: ``errors``, ``progress``, ``files``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "style_mask": "style",
    "write_mask_qml": "style",
    "write_classes_qml": "style",
    "add_gpkg_style": "style",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
