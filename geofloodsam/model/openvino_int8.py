"""The image encoder's int8 graph for OpenVINO: NNCF weight-only compression (``--precision
int8``, the optional ``int8`` extra).

``auto`` never takes it: it moved the masks of the 16384² synthetic scene to IoU 0.92 of
fp32 (``docs/performance.md``). The fp32 IR that ``openvino.convert_model`` makes of the
encoder is compressed with ``nncf.compress_weights``: the weights of its fully connected
layers (``MatMul``: attention projections and MLPs of TinyViT's transformer stages) are
stored as int8, asymmetric, one scale and zero point per output channel; OpenVINO's CPU
plugin quantises the activations of those layers on the fly and multiplies in int8 (its
dynamic quantisation, where all the speed came from). Convolutions stay fp32 (compressing
them too doubled the error of the features and was no faster). No calibration data. The
choice and its figures: ``docs/performance.md`` (``benchmarks/int8_encoder.py``).

:data:`INT8_RECIPE` is everything the compressed graph depends on besides the fp32 IR; it is
part of the cache key and of the signature written beside the cached IR
(:mod:`geofloodsam.model.openvino_runtime`).
"""

from __future__ import annotations

import json
from typing import Any

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.precision import nncf_available

#: the NNCF settings of the int8 graph (layer types left in fp32 included)
INT8_RECIPE: dict[str, Any] = {
    "method": "nncf.compress_weights",
    "mode": "INT8_ASYM",
    "group_size": -1,
    "fp32_types": ["Convolution", "GroupConvolution"],
    # OpenVINO quantises the activations of the int8 layers on the fly, in groups of this
    # many values (its default, pinned: it moves the figures; 0 turns it off, and then int8
    # weights were no faster than fp32)
    "dynamic_quantization_group_size": 32,
}
#: how to get NNCF
NNCF_FIX = (
    "--precision int8 needs NNCF to make the int8 graph once: `pip install "
    "geofloodsam[int8]` (or `pip install nncf`), or use --precision fp32."
)


def recipe_text() -> str:
    """:data:`INT8_RECIPE` as one canonical string, for cache keys and signatures."""
    return json.dumps(INT8_RECIPE, sort_keys=True)


def nncf_version() -> str:
    """NNCF's version (``"none"`` where it is not installed): recorded with a graph it made,
    not part of the key, so that a made graph runs without NNCF."""
    if not nncf_available():
        return "none"
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("nncf")
    except PackageNotFoundError:
        return "unknown"


def compress_weights(model: Any) -> Any:
    """The ``openvino.Model`` ``model`` with :data:`INT8_RECIPE` applied (a new model)."""
    if not nncf_available():
        raise GeofloodsamError(NNCF_FIX)
    import contextlib
    import io
    import logging

    import nncf

    nncf.set_log_level(logging.ERROR)  # its tables of layers go to the log, not the user
    # and its progress bar nowhere: the command line has its own (and --quiet)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return nncf.compress_weights(
            model,
            mode=getattr(nncf.CompressWeightsMode, INT8_RECIPE["mode"]),
            group_size=INT8_RECIPE["group_size"],
            ignored_scope=nncf.IgnoredScope(
                types=list(INT8_RECIPE["fp32_types"]), validate=False
            ),
        )
