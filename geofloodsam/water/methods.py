"""Which method and decoder a satellite run uses: ``--method auto|sam|index|fused``.

Torch-free (the command line shows the choices without importing torch). The rule, chosen
by measurement (``benchmarks/satellite_eval.py``, ``docs/satellite.md``):

* ``sam``: SAM alone on the sensor's composite (promptless: a whole-tile box per tile);
* ``index``: the scene's water prior alone (NDWI for optical, a bimodal SAR split for
  radar; :mod:`geofloodsam.water.index`), no SAM at all;
* ``fused``: the guarded gate (:func:`geofloodsam.water.fusion.guarded_gate`): the prior
  where it is confident, SAM's probability elsewhere, and only on tiles where SAM's mask
  agrees with the prior's confident pixels.

``auto`` is :data:`AUTO` for the detected sensor when promptless; with prompts it is
``sam`` (the prompts say what to map). SAM is used by ``auto`` only where cross-validation
showed the fused result beating the index alone on the mean per-chip IoU: it did not on
Sentinel-1 (leave-one-chip-out, ``benchmarks/satellite_cv.py --checkpoint ...``: held-out
fused 0.5078, index alone 0.5081: no gain), and one labelled Sentinel-2 chip cannot show it,
so ``auto`` is ``index`` on every sensor with a water index. The decoder entry is what
``fused`` and ``sam`` use when no ``--decoder`` is given. ``index`` and ``fused`` map the
whole scene and take no prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

from geofloodsam.errors import GeofloodsamError

METHODS = ("sam", "index", "fused")
METHOD_CHOICES = ("auto", *METHODS)
#: what ``--method auto`` runs promptless, per sensor, and the decoder used when none is
#: given (docs/satellite.md; ``naip`` and ``sar`` follow ``s2`` / ``s1``: no labelled data)
AUTO: dict[str, dict[str, str]] = {
    "s2": {"decoder": "satellite", "method": "index"},
    "s1": {"decoder": "satellite", "method": "index"},
    "sar": {"decoder": "satellite", "method": "index"},
    "naip": {"decoder": "satellite", "method": "index"},
    "rgb": {"decoder": "satellite", "method": "sam"},
}
#: the decoder of prompted runs on plain RGB when none is given (the README demo's): the
#: promptless one, since a click keeps the promptless water body it falls in
#: (docs/prompting.md: chosen on the ESW train scenes and the generated scenes)
PROMPTED_RGB_DECODER = "satellite"


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

    ``has_prior``: whether the scene's bands give a water prior (default: every sensor but
    ``rgb``). One-line errors: ``index`` / ``fused`` without a prior, or with prompts.
    """
    if method not in METHOD_CHOICES:
        raise GeofloodsamError(f"--method {method}: use one of {', '.join(METHOD_CHOICES)}.")
    if sensor not in AUTO:
        raise GeofloodsamError(f"unknown sensor {sensor!r}: use one of {', '.join(AUTO)}.")
    has_prior = sensor != "rgb" if has_prior is None else has_prior
    if method in ("index", "fused"):
        if not has_prior:
            raise GeofloodsamError(
                f"--method {method} needs a water index, and a {sensor} raster has no NIR, "
                "SWIR or radar band: use --method sam, or give a Sentinel-1, Sentinel-2 or "
                "R,G,B,NIR raster (--sensor s1|s2|naip)."
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
            chosen = AUTO[sensor]["method"]
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
    if prompted and sensor == "rgb":
        name = PROMPTED_RGB_DECODER
        return MethodChoice(chosen, name, f"{why}; decoder {name} (prompted RGB)")
    name = AUTO[sensor]["decoder"]
    return MethodChoice(chosen, name, f"{why}; decoder {name} (default for {sensor})")
