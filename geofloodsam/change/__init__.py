"""Flood extent: water now that was dry before (``geofloodsam flood``).

- :mod:`~geofloodsam.change.classes`: two water masks -> the classes flood, permanent
  water, receded, dry, nodata (one window at a time).
- :mod:`~geofloodsam.change.sensors`: whether two scenes' sensors may be compared.
- :mod:`~geofloodsam.change.align`: the "before" water on AFTER's grid, window by window
  (a warped read of BEFORE's mask or a reference raster; reference polygons rasterized).
- :mod:`~geofloodsam.change.logratio`: Sentinel-1 pairs: the log-ratio of the backscatter,
  split as the single-date radar split is.
- :mod:`~geofloodsam.change.outputs`: the class COG, the class polygons, ``run.json``.
- :mod:`~geofloodsam.change.config`: ``FloodConfig``, the run's settings, with the
  ``SegmentConfig`` both dates are mapped with.
- :mod:`~geofloodsam.change.pipeline`: ``flood``: both scenes mapped by ``segment``,
  combined, written all or nothing.

May import: everything up to ``segmentation`` (not ``evaluation``, ``training``).
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "flood": "pipeline",
    "FloodResult": "pipeline",
    "check_pair": "sensors",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
