"""The ``segment`` pipeline: scenes -> tiles -> embeddings -> logits -> blended mask -> polygons.

- :mod:`~geofloodsam.segmentation.config`: the run's options as one value, their defaults,
  parsing and checks (``SegmentConfig``).
- :mod:`~geofloodsam.segmentation.scenes`: many scenes: lists, footprints, prompt assignment.
- :mod:`~geofloodsam.segmentation.plan`: every scene opened, checked and seeded first.
- :mod:`~geofloodsam.segmentation.distributed`: the tile work on a Dask cluster.
- :mod:`~geofloodsam.segmentation.pipeline`: ``segment``: run the waves, finish each scene.
- :mod:`~geofloodsam.segmentation.prompted_prior`: prompts on rasters with a water index: a
  click selects its water body of the index fused with SAM.
- :mod:`~geofloodsam.segmentation.outputs`: blend, vectorize, write, ``run.json``, renames.

May import: everything up to ``stitch`` (not ``datasets``, ``evaluation``, ``training``).
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "SegmentConfig": "config",
    "segment": "pipeline",
    "SegmentResult": "outputs",
    "expand_scene_args": "scenes",
    "is_scene_list": "scenes",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
