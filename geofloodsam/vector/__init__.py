"""Vectors in and out: prompts read from vector files, water polygons written to GeoPackage.

- :mod:`~geofloodsam.vector.prompts`: points and boxes from GeoJSON / GeoPackage / Shapefile in
  any CRS, into a raster's pixels.
- :mod:`~geofloodsam.vector.polygonize`: the mask, strip by strip, into dissolved polygons (no
  seams along bands or tiles), their attributes and the GeoPackage;
  :mod:`~geofloodsam.vector.geopackage`: that GeoPackage layer written with SQLite alone (no
  pyogrio, which imports pandas and geopandas).

May import: ``errors``, ``files``, ``geo``, ``raster``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "NO_PROMPT": "prompts",
    "PROMPT_TYPES": "prompts",
    "PromptObject": "prompts",
    "PromptSet": "prompts",
    "read_prompts": "prompts",
    "read_prompt_frame": "prompts",
    "whole_image_box": "prompts",
    "StripPolygonizer": "polygonize",
    "polygons_to_frame": "polygonize",
    "write_gpkg": "polygonize",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
