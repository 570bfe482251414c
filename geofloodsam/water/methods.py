"""Which method and decoder a satellite run uses: ``--method auto|sam|index|fused``.

Torch-free (the command line shows the choices without importing torch). The rule, chosen
by measurement (``benchmarks/satellite_eval.py``, ``docs/satellite.md``):

* ``sam``: SAM alone on the sensor's composite (promptless: a whole-tile box per tile);
* ``index``: the scene's water prior alone (NDWI for optical, a bimodal SAR split for
  radar; :mod:`geofloodsam.water.index`), no SAM at all;
* ``fused``: the guarded gate (:func:`geofloodsam.water.fusion.guarded_gate`): the prior
  where it is confident, SAM's probability elsewhere, and only on tiles where SAM's mask
  agrees with the prior's confident pixels.

``auto`` is the detected sensor's ``auto_method`` when promptless (its class in the
registry :data:`geofloodsam.raster.sensors.SENSORS` declares it, with ``auto_decoder`` and
``prompted_decoder``); with prompts it is ``sam`` (the prompts say what to map). SAM is
used by ``auto`` only where cross-validation showed the fused result beating the index
alone on the mean per-chip IoU: it did not on Sentinel-1 (leave-one-chip-out,
``benchmarks/satellite_cv.py --checkpoint ...``: held-out fused 0.5078, index alone 0.5081:
no gain), and one labelled Sentinel-2 chip cannot show it, so ``auto`` is ``index`` on every
sensor with a water index. The decoder entry is what ``fused`` and ``sam`` use when no
``--decoder`` is given. ``index`` and ``fused`` map the whole scene and take no prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.sensors import SENSORS

METHODS = ("sam", "index", "fused")
METHOD_CHOICES = ("auto", *METHODS)


@dataclass(frozen=True)
class MethodChoice:
    """The method and decoder of a run and why (for ``run.json``)."""

    method: str  # sam | index | fused
    decoder: str | None  # a decoder spec; None when no SAM runs (index)
    reason: str

    def to_dict(self) -> dict:
        """JSON-ready record."""
        return {"method": self.method, "decoder": self.decoder, "reason": self.reason}


def choose(
    sensor: str, method: str = "auto", decoder: str | None = None, prompted: bool = False,
    has_prior: bool | None = None,
) -> MethodChoice:
    """Resolve ``--method`` and the default decoder for a scene of ``sensor``.

    ``has_prior``: whether the scene's bands give a water prior (default: the sensor
    declares a water index). One-line errors: ``index`` / ``fused`` without a prior, or
    with prompts.
    """
    if method not in METHOD_CHOICES:
        raise GeofloodsamError(f"--method {method}: use one of {', '.join(METHOD_CHOICES)}.")
    kind = SENSORS[sensor]
    has_prior = kind.water_index is not None if has_prior is None else has_prior
    if method in ("index", "fused"):
        if not has_prior:
            indexed = "|".join(s.name for s in SENSORS if s.water_index is not None)
            raise GeofloodsamError(
                f"--method {method} needs a water index, and a {sensor} raster has no NIR, "
                "SWIR or radar band: use --method sam, or give a raster with a water index "
                f"(--sensor {indexed})."
            )
        if prompted:
            raise GeofloodsamError(
                f"--method {method} maps the whole scene from its water index and takes no "
                "prompts: leave out --prompts, or use --method sam."
            )
    if method == "auto":
        if prompted:
            chosen, why = "sam", "prompts given: SAM maps what they point at"
        else:
            chosen = kind.auto_method
            if chosen != "sam" and not has_prior:
                chosen = "sam"
            why = (f"promptless {sensor}: {chosen} (cross-validated: SAM did not beat the index "
                   "alone; docs/satellite.md)" if chosen == "index" else
                   f"promptless {sensor}: {chosen} (docs/satellite.md)")
    else:
        chosen, why = method, f"--method {method}"
    if chosen == "index":
        return MethodChoice("index", None, f"{why}; no SAM decoder (the water index alone)")
    if decoder is not None:
        return MethodChoice(chosen, str(decoder), f"{why}; --decoder {decoder}")
    if prompted and kind.prompted_decoder is not None:
        name = kind.prompted_decoder
        return MethodChoice(chosen, name, f"{why}; decoder {name} (prompted {kind.title})")
    name = kind.auto_decoder
    return MethodChoice(chosen, name, f"{why}; decoder {name} (default for {sensor})")
