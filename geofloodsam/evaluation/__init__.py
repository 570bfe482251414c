"""Evaluation: scores against ground truth, tables and plots.

- :mod:`~geofloodsam.evaluation.metrics`: confusion counts -> IoU, Dice, Precision, Recall.
- :mod:`~geofloodsam.evaluation.config`: ``EvaluateConfig``, an evaluation's options as one
  value (defaults, parsing, checks).
- :mod:`~geofloodsam.evaluation.evaluate`: methods x decoders x prompt types on a data set;
  unusable chips skipped with a warning.
- :mod:`~geofloodsam.evaluation.satellite`: the rows of one image: SAM per prompt, the water
  index alone, SAM fused with it (guarded gate), ``auto`` per sensor.
- :mod:`~geofloodsam.evaluation.raster`: a georeferenced mask against a truth raster.
- :mod:`~geofloodsam.evaluation.report`: tables, plots, ``report.md``.

May import: everything up to ``datasets``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
#: (``evaluate`` itself is ``geofloodsam.evaluate``: its module has its name)
_API = {
    "Confusion": "metrics",
    "confusion": "metrics",
    "RasterScore": "raster",
    "ClassScore": "raster",
    "evaluate_raster": "raster",
    "evaluate_classes": "raster",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
