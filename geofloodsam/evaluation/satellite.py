"""The satellite methods of ``evaluate`` on one image: the water index alone, SAM promptless,
and their guarded fusion, computed as ``segment --method index|sam|fused`` computes them on a
scene that fits in one tile.

* :func:`sample_prior`: the chip's scene-level water prior
  (:func:`geofloodsam.water.scene_prior.scene_prior` on the chip, its sensor detected per
  chip), None for photos and ``rgb`` rasters (no NIR, SWIR or radar band).
* :func:`promptless_logits`: SAM's full-resolution logits of its best mask for the
  whole-image box (``none`` prompt, :data:`geofloodsam.vector.prompts.NO_PROMPT`), one
  mask decoded as ``segment`` decodes a promptless tile.
* :func:`fused_water`: :func:`geofloodsam.water.fusion.guarded_gate` of SAM's probability
  (the sigmoid of those logits) with the prior; water where the fused probability > 0.5.
* :func:`method_predictions`: every ``(row, mask)`` of one image for the chosen methods
  (``sam`` rows per decoder x prompt, ``index``, ``fused`` and ``auto`` per decoder), as
  :mod:`geofloodsam.evaluation.evaluate` scores them and ``benchmarks/satellite_eval.py``
  reuses them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geofloodsam.errors import GeofloodsamError, distinct_choices
from geofloodsam.model.decoders import Decoder, use_decoder
from geofloodsam.model.sam import Embedding, SamModel
from geofloodsam.vector.prompts import NO_PROMPT, whole_image_box
from geofloodsam.water.index import WaterPrior
from geofloodsam.water.methods import METHOD_CHOICES, choose

#: the methods of ``evaluate --method`` (``auto`` resolved per image), in table order
EVAL_METHODS = ("sam", "index", "fused", "auto")
#: the model label of the index row (it has no decoder)
INDEX_LABEL = "index"
#: the methods that need a water prior
PRIOR_METHODS = ("index", "fused")


@dataclass(frozen=True)
class MethodRow:
    """One row of the metrics table for one image: who predicted, how, and the mask."""

    model: str  # the decoder label (sam), "index", "fused/<decoder>", "auto/<decoder>"
    method: str  # sam | index | fused | auto
    prompt: str  # point | box | none
    mask: np.ndarray  # (H, W) bool water
    predicted_iou: float | None = None  # SAM's own estimate (None: no SAM, no prompt)
    agreement: float | None = None  # fused: SAM's agreement with the prior's confident pixels
    chosen: str | None = None  # auto: the method it ran on this image (sam | fused)


def check_methods(methods: Sequence[str]) -> list[str]:
    """The distinct methods of ``--method`` in table order; one-line error for unknown ones."""
    methods = distinct_choices(methods, METHOD_CHOICES, "method")
    return [m for m in EVAL_METHODS if m in methods]


def fused_label(decoder: str) -> str:
    """Model label of the ``fused`` row of ``decoder``."""
    return f"fused/{decoder}"


def auto_label(decoder: str) -> str:
    """Model label of the ``auto`` row of ``decoder``."""
    return f"auto/{decoder}"


def sample_prior(sample: Any) -> WaterPrior | None:
    """The scene-level water prior of a data set sample (None without index bands).

    The sample's sensor is detected (or its forced ``--sensor`` checked) per chip; photos
    and ``rgb`` rasters have no prior.
    """
    info = sample.sensor_info()
    if info is None or not info.index_bands:
        return None
    import rasterio

    from geofloodsam.water.scene_prior import scene_prior

    try:
        with rasterio.open(sample.image) as ds:
            return scene_prior(ds, info)
    except rasterio.errors.RasterioError as exc:
        raise GeofloodsamError(
            f"cannot read the index bands of {sample.image} ({type(exc).__name__}): the file "
            "is corrupt; replace it or remove it from the data set."
        ) from None


def promptless_logits(model: SamModel, embedding: Embedding) -> tuple[np.ndarray, float]:
    """(H, W) float32 full-resolution logits of SAM's best mask for the whole-image box,
    and its predicted IoU: one mask, decoded as ``segment`` decodes a promptless tile."""
    h, w = embedding.original_size
    pred = model.decode(embedding, boxes=np.array([whole_image_box(w, h)]), multimask=False)
    best = int(pred.best_index()[0])
    return pred.best_logits()[0], float(pred.iou[0, best])


def fused_water(sam_logits: np.ndarray, prior: WaterPrior) -> tuple[np.ndarray, float]:
    """(water, agreement): the guarded gate of SAM's probability with ``prior``, > 0.5."""
    from geofloodsam.model.logits import sigmoid
    from geofloodsam.water.fusion import guarded_gate

    fused, agree = guarded_gate(
        sigmoid(sam_logits), prior.probability(), prior.logits(), prior.valid
    )
    return fused > 0.5, float(agree)


@dataclass
class ImageInputs:
    """What the rows of one image are computed from."""

    embedding: Embedding | None  # None when no row needs SAM
    prompts: dict[str, Any]  # prompt type -> its prompt
    sensor: str
    prior: WaterPrior | None  # None without index bands


def method_predictions(
    model: SamModel | None,
    decoders: Sequence[Decoder],
    image: ImageInputs,
    methods: Sequence[str],
    prompt_types: Sequence[str],
    predict,
) -> Iterator[MethodRow]:
    """Every row of one image, in table order: for each decoder its ``sam`` rows (one per
    prompt type, through ``predict(model, embedding, ptype, prompt)``), then ``index``, then
    per decoder ``fused`` and ``auto``.

    ``index`` and ``fused`` rows are left out when the image has no prior (no index bands);
    ``auto`` is :func:`geofloodsam.water.methods.choose` for its sensor, promptless: SAM's
    promptless mask where it chooses ``sam``, the fused one where ``fused``.
    """
    embedding, prompts, sensor, prior = image.embedding, image.prompts, image.sensor, image.prior
    if "sam" in methods:
        for dec in decoders:
            with use_decoder(model, dec):
                for ptype in prompt_types:
                    mask, score = predict(model, embedding, ptype, prompts[ptype])
                    yield MethodRow(dec.label, "sam", ptype, mask, score)
    if "index" in methods and prior is not None:
        yield MethodRow(INDEX_LABEL, "index", NO_PROMPT, prior.water())
    wanted = [m for m in ("fused", "auto") if m in methods]
    if not wanted or (prior is None and "auto" not in wanted):  # nothing to fuse with
        return
    for dec in decoders:
        with use_decoder(model, dec):
            logits, score = promptless_logits(model, embedding)
        fused = fused_water(logits, prior) if prior is not None else None
        if "fused" in wanted and fused is not None:
            yield MethodRow(fused_label(dec.label), "fused", NO_PROMPT, fused[0], score,
                            fused[1])
        if "auto" in wanted:
            choice = choose(sensor, "auto", dec.label, prompted=False,
                            has_prior=prior is not None)
            if choice.method == "fused":
                yield MethodRow(auto_label(dec.label), "auto", NO_PROMPT, fused[0], score,
                                fused[1], "fused")
            elif choice.method == "sam":
                yield MethodRow(auto_label(dec.label), "auto", NO_PROMPT, logits > 0, score,
                                None, "sam")
            else:  # index (no sensor maps to it today)
                yield MethodRow(auto_label(dec.label), "auto", NO_PROMPT, prior.water(), None,
                                None, "index")
