"""The settings of one ``segment`` run, as one typed, frozen value.

:class:`SegmentConfig` owns every ``segment`` option: its default (the command line's
options take theirs from it), its parsing (``bands``, ``stretch``) and its checks (one-line
errors). The command line builds one, the library takes one (or builds it from keyword
overrides, :meth:`SegmentConfig.with_overrides`), every stage reads the fields it needs, and
``run.json`` records :meth:`SegmentConfig.record` under ``parameters``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.sensors import parse_sensor_spec
from geofloodsam.water.methods import METHOD_CHOICES

if TYPE_CHECKING:  # the command line imports this module: no rasterio or torch here
    from geofloodsam.model.spec import ModelSpec

#: :data:`geofloodsam.tiles.engine.MAX_OBJECT_TILES` (a test keeps them equal; importing the
#: engine here would load rasterio and scipy for ``geofloodsam --help``)
MAX_OBJECT_TILES = 256

#: fields of how the run is done rather than what it maps: not in ``run.json``'s
#: ``parameters`` (the model is recorded under ``model``)
_NOT_RECORDED = {"recorded": False}


@dataclass(frozen=True)
class SegmentConfig:
    """What a ``segment`` run was asked for (one scene's ``bands`` once it is opened).

    Construction parses and checks: ``bands`` (``"4,3,2"`` or numbers) becomes a list or
    None, ``stretch`` becomes ``"auto"``, ``"none"`` or ``[MIN, MAX]``; a bad value is a
    one-line :class:`~geofloodsam.errors.GeofloodsamError`.
    """

    prompts: str | None = None
    prompts_crs: str | None = None
    prompts_layer: str | None = None
    bands: str | list[int] | None = None
    stretch: str | list[float] = "auto"
    sensor: str = "auto"
    method: str = "auto"
    decoder: str | None = None  # None: the default for the sensor and method
    tile_size: int = 1024
    overlap: int = 256
    threshold: float = 0.5
    min_area: float = 0.0
    simplify: float = 0.0
    save_prob: bool = False
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    max_object_tiles: int = MAX_OBJECT_TILES
    #: map only the water bodies the clicks point at, not the scene's water alike
    clicked_only: bool = False
    scheduler: str | None = None
    workers: int | None = None
    threads: int | None = None
    model: str = field(default="vit_t", metadata=_NOT_RECORDED)
    checkpoint: str | None = field(default=None, metadata=_NOT_RECORDED)
    quiet: bool = field(default=False, metadata=_NOT_RECORDED)

    def __post_init__(self) -> None:
        for name in ("prompts", "decoder", "checkpoint"):  # paths are recorded as text
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))
        if self.bands is not None or self.stretch != "auto":  # the defaults need no parsing
            from geofloodsam.raster.scene import parse_bands, parse_stretch  # loads rasterio

            bands, stretch = parse_bands(self.bands), parse_stretch(self.stretch)
            object.__setattr__(self, "bands", None if bands is None else list(bands))
            object.__setattr__(
                self, "stretch", stretch if isinstance(stretch, str) else list(stretch)
            )
        self.check()

    def check(self) -> None:
        """One-line errors for numbers out of range and unknown choices."""
        parse_sensor_spec(self.sensor)  # --sensor, --sar-units, --s2-offset: one-line errors
        if self.method not in METHOD_CHOICES:
            raise GeofloodsamError(
                f"--method {self.method}: use one of {', '.join(METHOD_CHOICES)}."
            )
        if not 0.0 < self.threshold < 1.0:
            raise GeofloodsamError(
                f"--threshold must be between 0 and 1 (exclusive), got {self.threshold}."
            )
        if self.min_area < 0:
            raise GeofloodsamError(
                f"--min-area is in m² and cannot be negative, got {self.min_area}."
            )
        if self.simplify < 0:
            raise GeofloodsamError(
                f"--simplify is in metres and cannot be negative, got {self.simplify}."
            )
        if self.threads is not None and self.threads < 1:
            raise GeofloodsamError(f"--threads must be at least 1, got {self.threads}.")

    @classmethod
    def with_overrides(cls, config: SegmentConfig | None = None, **overrides: Any):
        """``config`` (default: the defaults) with ``overrides`` (field names) replaced.

        An unknown name is a one-line error listing the known ones.
        """
        base = cls() if config is None else config
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            raise GeofloodsamError(
                f"unknown {cls.__name__} option(s) {', '.join(unknown)}: use "
                f"{', '.join(cls.field_names())}."
            )
        return dataclasses.replace(base, **overrides) if overrides else base

    @classmethod
    def field_names(cls) -> list[str]:
        """The options, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @property
    def stretch_spec(self) -> str | tuple[float, float]:
        """``stretch`` as :func:`geofloodsam.raster.scene.compute_stretch` takes it."""
        return self.stretch if isinstance(self.stretch, str) else tuple(self.stretch)

    @property
    def distributed(self) -> bool:
        """Whether the tile work runs on Dask (``scheduler`` or ``workers`` given)."""
        return self.scheduler is not None or self.workers is not None

    def model_spec(self, decoder: str | None = None) -> ModelSpec:
        """The model this run loads with ``decoder`` (None: ``model``'s default decoder),
        in this process or on every Dask worker alike."""
        from geofloodsam.model.decoders import DecoderSpec
        from geofloodsam.model.spec import ModelSpec

        return ModelSpec(
            self.model, self.checkpoint, DecoderSpec.parse(decoder, self.model).text,
            self.device, precision=self.precision, runtime=self.runtime,
        )

    def for_scene(self, bands) -> SegmentConfig:
        """This config with the bands an opened scene actually uses."""
        return dataclasses.replace(self, bands=list(bands))

    def record(self) -> dict[str, Any]:
        """JSON-ready fields, in declaration order (``run.json``'s ``parameters``)."""
        values = dataclasses.asdict(self)
        return {
            f.name: values[f.name]
            for f in dataclasses.fields(self)
            if f.metadata.get("recorded", True)
        }
