"""geofloodsam's QGIS plugin: a Processing provider that calls geofloodsam in its own environment.

Installed into a QGIS profile by ``geofloodsam qgis install`` (as the plugin ``geofloodsam``).
It runs in QGIS's own Python, so it imports nothing of geofloodsam's heavy dependencies; the
QGIS parts are imported only when QGIS loads the plugin (:func:`classFactory`), and
:mod:`.runner` and :mod:`.tasks` use the standard library only.
"""


def classFactory(iface):  # the name QGIS looks for
    """QGIS's entry point: the plugin object."""
    from .plugin import GeofloodsamPlugin

    return GeofloodsamPlugin(iface)
