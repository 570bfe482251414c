"""The sensor registry: one class per sensor, declared by its attributes, found by name.

A sensor is a subclass of :class:`Sensor` (the style of torchgeo's ``datasets/sentinel.py``:
class attributes say what the sensor is, a class method recognises it) registered in a
:class:`SensorRegistry`; :data:`geofloodsam.raster.sensors.SENSORS` holds the built-in ones.
Everything that differs by sensor asks the registry instead of comparing names: detection
(:func:`geofloodsam.raster.sensors.detect_sensor` tries each class in order), the composite,
the water prior (:mod:`geofloodsam.water.index` resolves :attr:`Sensor.water_index`), the
``--method auto`` choice (:mod:`geofloodsam.water.methods`), the Sen1Floods11 chip folders
(:mod:`geofloodsam.datasets.reading`), the ``--sensor`` choices and help (:mod:`geofloodsam.cli`)
and the QGIS plugin's menu (written by ``geofloodsam qgis install``).

Why names, not objects, for the water index, the method and the decoders: ``raster`` sits
below ``water`` and ``model`` in the layers (tests/test_layout.py), so a sensor class cannot
import the index functions or decoders. It names them (``"mndwi"``, ``"index"``,
``"satellite"``), and the layer that owns each name resolves it; a test checks that every
registered sensor's names resolve. Adding a sensor means one class and its tests
(``docs/sensors.md``)::

    @SENSORS.register
    class Toy(Sensor):
        name, title, help = "toy", "Toy", "toy (5 bands)"
        needs = "5 bands"
        water_index = "ndwi"

        @classmethod
        def detect(cls, ds, probe, forced):
            return None if ds.count != 5 else SensorInfo(...)

This module imports nothing but the standard library and ``errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from geofloodsam.errors import GeofloodsamError

if TYPE_CHECKING:
    from geofloodsam.raster.sensors import Probe, SensorInfo


class Sensor:
    """A sensor, declared by class attributes; subclasses implement :meth:`detect`.

    Attributes:
        name: the ``--sensor`` name (also ``SensorInfo.sensor`` and run.json's).
        title: how ``reason`` (run.json) names it.
        help: its part of the ``--sensor`` help.
        needs: what a forced ``--sensor`` needs, for the one-line error when the raster
            does not fit ("--sensor NAME needs NEEDS; FILE has ...").
        fixed_composite: SAM sees the sensor's fixed physical composite (not bands 1-3
            through the scene's stretch).
        radar: backscatter (values converted to dB; composite co, cross, co - cross).
        composites: composite name -> what the class needs to build it (bands, ranges).
        default_composite: the composite used when none is asked for.
        water_index: the name of its water index, resolved by
            :data:`geofloodsam.water.index.INDEX_ROLES` (``ndwi``, ``mndwi``,
            ``radar-split``); None: no water prior (``--method index|fused`` refused).
        auto_method: what ``--method auto`` runs promptless (``index`` or ``sam``).
        auto_decoder: the decoder of ``sam`` / ``fused`` when no ``--decoder`` is given.
        prompted_decoder: the decoder of prompted runs when none is given (None: the same
            as ``auto_decoder``).
        chip_folder: the image folder of its chips in a Sen1Floods11-style set, or None.
        catch_all: detected last, whatever the raster (the plain RGB reading).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    help: ClassVar[str]
    needs: ClassVar[str] = "its band layout"
    fixed_composite: ClassVar[bool] = False
    radar: ClassVar[bool] = False
    composites: ClassVar[dict[str, Any]] = {}
    default_composite: ClassVar[str] = "true"
    water_index: ClassVar[str | None] = None
    auto_method: ClassVar[str] = "sam"
    auto_decoder: ClassVar[str] = "satellite"
    prompted_decoder: ClassVar[str | None] = None
    chip_folder: ClassVar[str | None] = None
    catch_all: ClassVar[bool] = False

    @classmethod
    def detect(cls, ds, probe: Probe, forced: bool) -> SensorInfo | None:
        """The :class:`~geofloodsam.raster.sensors.SensorInfo` of ``ds`` if this sensor's
        rule recognises it, else None. ``forced``: the user named this sensor (``--sensor``),
        so a looser rule may apply; None then becomes a one-line error naming :attr:`needs`."""
        raise NotImplementedError

    @classmethod
    def composite_named(cls, composite: str | None) -> str:
        """``composite`` (default :attr:`default_composite`), checked against
        :attr:`composites`; a one-line error names the choices."""
        composite = composite or cls.default_composite
        if composite not in cls.composites:
            raise GeofloodsamError(
                f"composite {composite!r} for {cls.name}: use one of "
                f"{', '.join(cls.composites)}."
            )
        return composite


class SensorRegistry:
    """The registered sensors in detection order: in the order registered, catch-alls last."""

    def __init__(self) -> None:
        self._sensors: dict[str, type[Sensor]] = {}

    def register(self, sensor: type[Sensor]) -> type[Sensor]:
        """Add ``sensor`` (usable as a class decorator); its name must be new and not auto."""
        if sensor.name == "auto" or sensor.name in self._sensors or "|" in sensor.name:
            raise ValueError(f"sensor name {sensor.name!r} is taken or reserved")
        ordered = [*self._sensors.values(), sensor]
        ordered.sort(key=lambda s: s.catch_all)  # stable: registration order otherwise
        self._sensors = {s.name: s for s in ordered}
        return sensor

    def unregister(self, name: str) -> type[Sensor]:
        """Remove and return the sensor called ``name``."""
        return self._sensors.pop(name)

    def __getitem__(self, name: str) -> type[Sensor]:
        try:
            return self._sensors[name]
        except KeyError:
            raise GeofloodsamError(
                f"unknown sensor {name!r}: use one of {', '.join(self._sensors)}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._sensors

    def __iter__(self) -> Iterator[type[Sensor]]:
        return iter(tuple(self._sensors.values()))

    def __len__(self) -> int:
        return len(self._sensors)

    def names(self) -> tuple[str, ...]:
        """The sensor names, in detection order."""
        return tuple(self._sensors)

    def choices(self) -> tuple[str, ...]:
        """``--sensor`` choices: ``auto`` and the names."""
        return ("auto", *self._sensors)

    def help(self) -> str:
        """The sensors' part of the ``--sensor`` help: each one's :attr:`Sensor.help`."""
        parts = [s.help for s in self._sensors.values()]
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else "".join(parts)
