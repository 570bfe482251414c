"""Water evidence from the bands, and its fusion with SAM (satellite rasters, issues 11, 20).

- :mod:`~geofloodsam.water.index`: MNDWI / NDWI for optical bands; for radar (any SAR), the
  split of the bimodal tiles of the cross- or co-polarised band (``bimodal_split`` for any
  dB-like array), one threshold per scene, and a minimum mapping unit; ``WaterPrior``.
- :mod:`~geofloodsam.water.scene_prior`: one scene threshold (a bounded read), and each
  window's evidence with it, so tiles rebuild exactly their part of the scene prior.
- :mod:`~geofloodsam.water.fusion`: the guarded gate of SAM's probability with the prior
  (the other fusions measured against it are in ``benchmarks/fusion_experiments.py``).
- :mod:`~geofloodsam.water.methods`: ``--method auto|sam|index|fused`` and the decoder each
  sensor gets by default (``auto``: the index, SAM having added nothing under
  cross-validation; docs/satellite.md).

``segment`` runs them tile by tile (:mod:`geofloodsam.segmentation.prior_tiles`),
``evaluate --method`` per image (:mod:`geofloodsam.evaluation.satellite`). Sensor
detection and composites are :mod:`geofloodsam.raster.sensors`.

May import: everything up to ``datasets``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
#: (``scene_prior`` itself is in :mod:`geofloodsam.water.scene_prior`: its module's name)
_API = {
    "WaterPrior": "index",
    "prior_for": "index",
    "optical_prior": "index",
    "radar_prior": "index",
    "sar_prior": "index",
    "bimodal_split": "index",
    "ndwi": "index",
    "mndwi": "index",
    "PriorSpec": "scene_prior",
    "window_prior": "scene_prior",
    "guarded_gate": "fusion",
    "METHOD_CHOICES": "methods",
    "MethodChoice": "methods",
    "choose": "methods",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
