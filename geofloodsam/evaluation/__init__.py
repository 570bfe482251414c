"""Evaluation: scores against ground truth, tables and plots.

- :mod:`~geofloodsam.evaluation.metrics`: confusion counts -> IoU, Dice, Precision, Recall.
- :mod:`~geofloodsam.evaluation.evaluate`: decoders x prompt types on a data set.
- :mod:`~geofloodsam.evaluation.raster`: a georeferenced mask against a truth raster.
- :mod:`~geofloodsam.evaluation.report`: tables, plots, ``report.md``.

May import: everything up to ``datasets``.
"""
