"""Reading rasters: a scene opened once, read window by window, never whole.

- :mod:`~geofloodsam.raster.scene`: ``Scene`` (band selection, nodata and internal masks,
  validity), ``--bands`` / ``--stretch`` parsing, and the scene-level stretch to 8-bit that
  every tile shares (no per-tile contrast, so no seams).
- :mod:`~geofloodsam.raster.sensors`: which sensor a raster comes from (Sentinel-2, Sentinel-1,
  any SAR, NAIP, RGB: one registered class each, :data:`~geofloodsam.raster.sensors.SENSORS`)
  and its fixed physical composite to 8-bit RGB.
- :mod:`~geofloodsam.raster.sensor_registry`: the ``Sensor`` base class (declarative
  attributes: detection rule, bands, composite, the names of its water index, ``auto``
  method and decoders) and the registry every sensor-dependent step asks.
- :mod:`~geofloodsam.raster.radar_units`: radar units (dB, linear power, amplitude) from the
  band metadata or the values, and the conversion to dB.
- :mod:`~geofloodsam.raster.strips`: the row strips every full-raster pass walks.
- :mod:`~geofloodsam.raster.values`: data types refused before any value is read,
  undeclared fill values (float extremes such as -3.4e38) read as nodata, and the decimated
  sample that sensor detection looks at.

May import: ``errors``, ``files``, ``geo``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "Scene": "scene",
    "Stretch": "scene",
    "compute_stretch": "scene",
    "parse_bands": "scene",
    "parse_stretch": "scene",
    "SENSORS": "sensors",
    "Sensor": "sensor_registry",
    "SensorRegistry": "sensor_registry",
    "SensorInfo": "sensors",
    "detect_sensor": "sensors",
    "read_composite": "sensors",
    "row_strips": "strips",
    "strip_rows": "strips",
    "fill_pixels": "values",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
