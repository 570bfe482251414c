"""Where things are: every coordinate transform and every area on the ground.

- :mod:`~geofloodsam.geo.transforms`: pixel <-> SAM's 1024 model frame, world <-> pixel
  through the affine transform, reprojecting geometries between CRSs (densified edges, never
  two corners), and the one "inside the raster" rule for points and boxes.
- :mod:`~geofloodsam.geo.boxes`: the one box type (:class:`~geofloodsam.geo.boxes.Box`,
  ``x0, y0, x1, y1``, half-open) for tiles, crops, strips' spans and box prompts.
- :mod:`~geofloodsam.geo.area`: the one area convention (geodesic m²) and metres in CRS units.

May import: ``errors``, ``files``.
"""
