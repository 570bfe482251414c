"""Water evidence from the bands, and its fusion with SAM (satellite rasters, issue 11).

- :mod:`~geofloodsam.water.index`: NDWI / MNDWI for optical bands; for radar, Otsu and
  Kittler-Illingworth thresholds on bimodal tiles, one threshold per scene; ``WaterPrior``.
- :mod:`~geofloodsam.water.fusion`: the prior as SAM prompts or ``mask_input``, per-pixel
  fusion rules, the guarded gate, and what ``auto`` runs per sensor.

Not wired into ``segment`` yet; ``evaluate --method index|fused|auto`` uses them
(:mod:`geofloodsam.evaluation.satellite`), as does ``benchmarks/satellite_eval.py``
(docs/satellite.md). Sensor detection and composites are :mod:`geofloodsam.raster.sensors`.

May import: everything up to ``datasets``.
"""
