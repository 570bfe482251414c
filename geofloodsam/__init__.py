"""geofloodsam: map flood water in georeferenced imagery with Segment Anything.

The public API, imported on first use (``import geofloodsam`` itself loads neither torch nor
GDAL)::

    from geofloodsam import load_model, segment, flood, finetune, evaluate, evaluate_raster
    from geofloodsam import SegmentConfig, FloodConfig, EvaluateConfig  # their options

Each subpackage lists its own public names in ``__all__``, imported on first use the same way
(:func:`lazy_api`), e.g. ``from geofloodsam.tiles import TileGrid``.

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
``stitch``          blending tiles into one seamless mask, row strip by row strip
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
import sys
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"


def lazy_api(package: str, api: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package whose public names are
    imported on first access (so that importing the package loads neither torch nor GDAL).

    ``api``: public name -> the module that defines it, relative to ``package``. Every
    subpackage lists its public names this way, as ``__all__ = [*_API]``.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = api.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(api))

    return __getattr__, __dir__


#: the public API: name -> its module, imported on first access
_API = {
    "load_model": "model.sam",
    "segment": "segmentation.pipeline",
    "flood": "change.pipeline",
    "finetune": "training.finetune",
    "evaluate": "evaluation.evaluate",
    "evaluate_raster": "evaluation.raster",
    "SegmentConfig": "segmentation.config",
    "FloodConfig": "change.config",
    "EvaluateConfig": "evaluation.config",
}

__all__ = ["__version__", *_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
