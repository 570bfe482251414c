"""Where things are: every coordinate transform and every area on the ground.

- :mod:`~geofloodsam.geo.transforms`: pixel <-> SAM's 1024 model frame, world <-> pixel
  through the affine transform, reprojecting geometries between CRSs (densified edges, never
  two corners), and the one "inside the raster" rule for points and boxes.
- :mod:`~geofloodsam.geo.boxes`: the one box type (:class:`~geofloodsam.geo.boxes.Box`,
  ``x0, y0, x1, y1``, half-open) for tiles, crops, strips' spans and box prompts.
- :mod:`~geofloodsam.geo.area`: the one area convention (geodesic m²) and metres in CRS units.

May import: ``errors``, ``files``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "pixel_to_model": "transforms",
    "model_to_pixel": "transforms",
    "world_to_pixel": "transforms",
    "pixel_to_world": "transforms",
    "reproject_geometries": "transforms",
    "pixels_inside": "transforms",
    "geodesic_areas": "area",
    "metres_to_crs_units": "area",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
