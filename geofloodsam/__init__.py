"""geofloodsam: map flood water in georeferenced imagery with Segment Anything.

The public API, imported on first use (``import geofloodsam`` itself loads neither torch nor
GDAL)::

    from geofloodsam import load_model, segment, flood, finetune, evaluate, evaluate_raster
    from geofloodsam import SegmentConfig, FloodConfig, EvaluateConfig  # their options

The package follows the data flow, one subpackage per step or activity; each may import
only the ones listed before it (``tests/test_layout.py`` checks this):

==================  =========================================================================
``errors``          the one-line user error (module)
``progress``        progress bars, or JSON progress lines for the QGIS plugin (module)
``files``           atomic writes with one file mode, content hashes
``qgis``            outputs styled for QGIS; the QGIS plugin (runs geofloodsam as a subprocess)
``geo``             every coordinate transform (pixel <-> model, world <-> pixel, CRS), areas
``raster``          reading scenes window by window, band selection, the scene-level stretch
``vector``          prompts from vector files, mask -> polygons -> GeoPackage
``weights``         the checkpoint registry, cache and verified download
``model``           SAM without torchvision: load, encode, decode; decoders; embedding cache
``tiles``           the tile grid, the per-tile work (read, encode, decode), waves of tiles
``stitch``          blending tiles into one seamless mask, row band by row band
``datasets``        image/mask folders and GeoTIFF chips; prompts from truth; sample scenes
``water``           water indices and SAR thresholds, their fusion with SAM (satellite data)
``evaluation``      metrics, scoring decoders x prompts, reports; scoring a georeferenced mask
``training``        fine-tuning the mask decoder
``segmentation``    the ``segment`` pipeline: plan, run the tiles (in-process or Dask), finish
``change``          ``flood``: both dates mapped as ``segment`` maps them, compared on one grid
``cli``             the ``geofloodsam`` command
==================  =========================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: the public API: name -> "module:attribute", imported on first access
_API = {
    "load_model": "geofloodsam.model.sam:load_model",
    "segment": "geofloodsam.segmentation.pipeline:segment",
    "flood": "geofloodsam.change.pipeline:flood",
    "finetune": "geofloodsam.training.finetune:finetune",
    "evaluate": "geofloodsam.evaluation.evaluate:evaluate",
    "evaluate_raster": "geofloodsam.evaluation.raster:evaluate_raster",
    "SegmentConfig": "geofloodsam.segmentation.config:SegmentConfig",
    "FloodConfig": "geofloodsam.change.config:FloodConfig",
    "EvaluateConfig": "geofloodsam.evaluation.config:EvaluateConfig",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'geofloodsam' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
