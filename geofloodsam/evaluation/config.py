"""The settings of one ``evaluate`` run, as one typed, frozen value.

:class:`EvaluateConfig` owns every ``evaluate`` option's default (the command line's options
take theirs from it) and its parsing and checks (one-line errors); it imports nothing heavy,
so the command line can build its defaults at start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geofloodsam.errors import GeofloodsamError, distinct_choices
from geofloodsam.vector.prompts import PROMPT_TYPES
from geofloodsam.water.methods import METHOD_CHOICES

if TYPE_CHECKING:
    from geofloodsam.model.spec import ModelSpec

#: the prompt types ``evaluate`` scores (``none``: the whole-image box): the one list of
#: :mod:`geofloodsam.vector.prompts`
PROMPT_CHOICES = PROMPT_TYPES


@dataclass(frozen=True)
class EvaluateConfig:
    """What an ``evaluate`` run was asked for.

    ``methods``: ``sam`` (every decoder × prompt type), ``index`` (the water prior alone),
    ``fused`` (per decoder, promptless, the guarded gate), ``auto`` (per decoder, what
    ``segment --method auto`` runs promptless for each image's sensor); see
    :mod:`geofloodsam.evaluation.satellite`. ``sensor``: GeoTIFF chips' sensor, ``auto``
    (detected per chip) or forced. ``split``: ``auto`` (``test``; every chip of a chip
    folder), ``all`` / None, ``train``, ``val``, ``test``. ``prompts_file``: score on the
    prompts of a saved ``prompts.json``. ``seed``: of the tool-made split of folders
    without ``splits.csv``. ``examples``: images per collage (0: none).
    """

    decoders: tuple[str, ...] = ("pretrained", "flood")
    prompt_types: tuple[str, ...] = ("point", "box")
    methods: tuple[str, ...] = ("sam",)
    sensor: str = "auto"
    split: str | None = "auto"
    prompts_file: str | None = None
    model_name: str = "vit_t"
    checkpoint: str | None = None
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    cache_dir: str | None = None
    bands: tuple[int, ...] | None = None
    stretch: str | tuple[float, float] = "auto"
    seed: int = 0
    examples: int = 4
    progress: bool = True

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("prompts_file", "checkpoint", "cache_dir"):
            if isinstance(getattr(self, name), Path):
                put(name, str(getattr(self, name)))
        put("decoders", tuple(str(d) for d in self.decoders))
        put("prompt_types", tuple(distinct_choices(self.prompt_types, PROMPT_CHOICES,
                                                   "prompt type")))
        # distinct and known (the tables' order: geofloodsam.evaluation.satellite.check_methods)
        put("methods", tuple(distinct_choices(self.methods, METHOD_CHOICES, "method")))
        if self.need_sam and not self.decoders:
            raise GeofloodsamError(
                "no decoder to evaluate: give --decoder pretrained, flood or a decoder file."
            )
        if self.bands is not None or self.stretch != "auto":  # the defaults need no parsing
            from geofloodsam.raster.scene import parse_bands, parse_stretch  # loads rasterio

            put("bands", parse_bands(self.bands))
            put("stretch", parse_stretch(self.stretch))

    def model_spec(self) -> ModelSpec:
        """The base model to load (decoders are swapped in for their turns)."""
        from geofloodsam.model.spec import ModelSpec

        return ModelSpec(
            self.model_name, self.checkpoint, "pretrained", self.device,
            precision=self.precision, runtime=self.runtime,
        )

    @property
    def need_sam(self) -> bool:
        """Whether a row needs SAM (every method but ``index``)."""
        return any(m != "index" for m in self.methods)

    @classmethod
    def with_overrides(cls, config: EvaluateConfig | None = None, **overrides: Any):
        """``config`` (default: the defaults) with ``overrides`` (field names) replaced; an
        unknown name is a one-line error."""
        base = cls() if config is None else config
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise GeofloodsamError(
                f"unknown evaluate option(s) {', '.join(unknown)}: use {', '.join(names)}."
            )
        return dataclasses.replace(base, **overrides) if overrides else base
