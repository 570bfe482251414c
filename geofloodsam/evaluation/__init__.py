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
