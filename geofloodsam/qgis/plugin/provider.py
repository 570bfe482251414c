"""The ``geofloodsam`` Processing provider and its one setting (the geofloodsam executable)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider

from .runner import configured_command

#: Processing setting: path of the geofloodsam executable to call (empty: found automatically)
EXECUTABLE_SETTING = "GEOFLOODSAM_EXECUTABLE"

try:  # the Processing plugin's settings (Settings > Options > Processing > Providers)
    from processing.core.ProcessingConfig import ProcessingConfig, Setting
except ImportError:  # pragma: no cover - Processing plugin absent
    ProcessingConfig = Setting = None


def command() -> list[str]:
    """The command line of the configured geofloodsam (see :func:`runner.configured_command`)."""
    setting = None
    if ProcessingConfig is not None:
        setting = ProcessingConfig.getSetting(EXECUTABLE_SETTING) or None
    return configured_command(setting)


class GeofloodsamProvider(QgsProcessingProvider):
    """Algorithms ``geofloodsam:segment``, ``:flood`` and ``:evaluate_raster``."""

    def id(self) -> str:
        return "geofloodsam"

    def name(self) -> str:
        return "geofloodsam"

    def longName(self) -> str:
        return "geofloodsam: flood mapping with Segment Anything"

    def load(self) -> bool:
        """Declare the setting, then load the algorithms."""
        if ProcessingConfig is not None:
            ProcessingConfig.settingIcons[self.name()] = self.icon()
            ProcessingConfig.addSetting(Setting(
                self.name(), EXECUTABLE_SETTING,
                "geofloodsam executable (empty: the one `geofloodsam qgis install` recorded)",
                "", valuetype=Setting.FILE,
            ))
            ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        if ProcessingConfig is not None:
            ProcessingConfig.removeSetting(EXECUTABLE_SETTING)

    def loadAlgorithms(self) -> None:
        from .algorithms import EvaluateRasterAlgorithm, FloodAlgorithm, SegmentAlgorithm

        self.addAlgorithm(SegmentAlgorithm())
        self.addAlgorithm(FloodAlgorithm())
        self.addAlgorithm(EvaluateRasterAlgorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:
        return "gpkg"

    def defaultRasterFileExtension(self) -> str:
        return "tif"
