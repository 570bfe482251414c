"""Import segment-anything's model classes without importing torchvision.

``segment_anything/__init__.py`` imports the predictor and mask generator, which import
torchvision; torchvision has no working CPU build here and is not a dependency of this
project. We therefore load the installed package's directory under a private alias
(``_geofloodsam_segment_anything``) whose ``__init__`` is never executed, and import only
``modeling`` and ``build_sam`` from it; neither touches torchvision. The public
``segment_anything`` name in ``sys.modules`` is left alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from geofloodsam.errors import GeofloodsamError

_ALIAS = "_geofloodsam_segment_anything"


def _package() -> types.ModuleType:
    if _ALIAS in sys.modules:
        return sys.modules[_ALIAS]
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or not spec.submodule_search_locations:
        raise GeofloodsamError(
            "segment-anything is not installed: run `pip install segment-anything`."
        )
    package = types.ModuleType(_ALIAS)
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = _ALIAS
    sys.modules[_ALIAS] = package
    return package


def modeling() -> types.ModuleType:
    """Return ``segment_anything.modeling`` (Sam, MaskDecoder, PromptEncoder, ...)."""
    _package()
    return importlib.import_module(f"{_ALIAS}.modeling")


def build_sam() -> types.ModuleType:
    """Return ``segment_anything.build_sam`` (the official ViT-B/L/H builders)."""
    _package()
    return importlib.import_module(f"{_ALIAS}.build_sam")
