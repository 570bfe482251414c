"""The settings of one ``flood`` run, as one typed, frozen value.

:class:`FloodConfig` holds what ``flood`` adds (the reference layer, the change rule, the
class polygons' filter) and, as ``mapping``, the
:class:`~geofloodsam.segmentation.config.SegmentConfig` both dates are mapped with: the
mapping options are ``segment``'s, declared once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geofloodsam.errors import GeofloodsamError
from geofloodsam.segmentation.config import SegmentConfig


@dataclass(frozen=True)
class FloodConfig:
    """What a ``flood`` run was asked for.

    ``min_area`` and ``simplify`` filter the class polygons; the dates themselves are mapped
    with ``mapping`` (whose own ``min_area`` / ``simplify`` stay at their defaults).
    """

    reference_water: str | None = None  # instead of BEFORE: a water raster or polygons
    reference_min: float = 1.0  # reference raster values at least this are water
    reference_layer: str | None = None
    change: str = "auto"  # auto | water | log-ratio
    save_water: bool = False
    allow_mixed_sensors: bool = False
    min_area: float = 0.0
    simplify: float = 0.0
    mapping: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.reference_water, Path):
            object.__setattr__(self, "reference_water", str(self.reference_water))

    @classmethod
    def with_overrides(cls, config: FloodConfig | None = None, **overrides: Any) -> FloodConfig:
        """``config`` (default: the defaults) with ``overrides`` replaced: this class's
        fields, then ``mapping``'s (``SegmentConfig`` field names); an unknown name is a
        one-line error."""
        base = cls() if config is None else config
        own = {f.name for f in dataclasses.fields(cls)} - {"mapping"}
        mapping_names = set(SegmentConfig.field_names()) - own
        unknown = sorted(set(overrides) - own - mapping_names)
        if unknown:
            raise GeofloodsamError(
                f"unknown flood option(s) {', '.join(unknown)}: use "
                f"{', '.join(sorted(own | mapping_names))}."
            )
        mine = {k: v for k, v in overrides.items() if k in own}
        theirs = {k: v for k, v in overrides.items() if k not in own}
        mapping = SegmentConfig.with_overrides(base.mapping, **theirs)
        return dataclasses.replace(base, mapping=mapping, **mine)
