"""Water evidence from the bands, and its fusion with SAM (satellite rasters, issue 11).

- :mod:`~geofloodsam.water.index`: NDWI / MNDWI for optical bands; for radar, Otsu and
  Kittler-Illingworth thresholds on bimodal tiles, one threshold per scene; ``WaterPrior``.
- :mod:`~geofloodsam.water.scene_prior`: one scene threshold (a bounded read), and each
  window's evidence with it, so tiles rebuild exactly their part of the scene prior.
- :mod:`~geofloodsam.water.fusion`: the prior as SAM prompts or ``mask_input``, per-pixel
  fusion rules, the guarded gate.
- :mod:`~geofloodsam.water.methods`: ``--method auto|sam|index|fused`` and the decoder each
  sensor gets by default (measured, docs/satellite.md).

``segment`` runs them tile by tile (:mod:`geofloodsam.segmentation.prior_tiles`),
``evaluate --method`` per image (:mod:`geofloodsam.evaluation.satellite`). Sensor
detection and composites are :mod:`geofloodsam.raster.sensors`.

May import: everything up to ``datasets``.
"""
