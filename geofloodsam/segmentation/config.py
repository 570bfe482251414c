"""The settings of one ``segment`` run, as one typed, frozen value.

:class:`SegmentConfig` replaces a loose parameter dict: every stage reads the fields it
needs, and ``run.json`` records :meth:`SegmentConfig.record` under ``parameters``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.sensors import parse_sensor_spec
from geofloodsam.tiles.engine import MAX_OBJECT_TILES
from geofloodsam.water.methods import METHOD_CHOICES


@dataclass(frozen=True)
class SegmentConfig:
    """What a ``segment`` run was asked for (one scene's ``bands`` once it is opened)."""

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
    scheduler: str | None = None
    workers: int | None = None
    threads: int | None = None

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

    @property
    def distributed(self) -> bool:
        """Whether the tile work runs on Dask (``scheduler`` or ``workers`` given)."""
        return self.scheduler is not None or self.workers is not None

    def for_scene(self, bands) -> SegmentConfig:
        """This config with the bands an opened scene actually uses."""
        return dataclasses.replace(self, bands=list(bands))

    def record(self) -> dict[str, Any]:
        """JSON-ready fields, in declaration order (``run.json``'s ``parameters``)."""
        return dataclasses.asdict(self)
