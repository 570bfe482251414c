"""The plugin object QGIS loads: it registers the Processing provider (GUI or qgis_process)."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import GeofloodsamProvider


class GeofloodsamPlugin:
    """Adds the ``geofloodsam`` Processing provider; nothing else in the GUI."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: GeofloodsamProvider | None = None

    def initProcessing(self) -> None:  # QGIS's hook (also called by qgis_process)
        """Register the provider once."""
        if self.provider is None:
            self.provider = GeofloodsamProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # QGIS's hook
        """In the QGIS application: the provider is all there is."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider (plugin disabled or reloaded)."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
