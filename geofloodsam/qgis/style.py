"""Styles that make ``segment``'s outputs look right the moment QGIS (or another GIS) opens them.

* The mask GeoTIFF gets a colour table (:data:`MASK_COLORS`: water blue) and its nodata
  (255) shows clear. A TIFF palette has no alpha, so dry pixels (0) are white in plain
  viewers; :func:`write_mask_qml` writes the QGIS style (a paletted renderer: dry
  transparent, water blue) that QGIS loads by itself from ``<name>.qml`` beside ``<name>.tif``.
* The GeoPackage is written as GeoPackage 1.2 (:data:`GPKG_OPTIONS`: QGIS 3.22 LTR warns
  "GeoPackage v1.4.0 may only be partially supported" about newer GDAL's default) and
  carries a default layer style in the QGIS ``layer_styles`` table (:func:`add_gpkg_style`):
  flood polygons in translucent blue, in QML and SLD, ``useAsDefault`` = 1.
* ``flood``'s class raster (:data:`CHANGE_CLASSES`: flood red-orange, permanent water blue,
  receded yellow, dry transparent) gets the same treatment (:func:`style_classes`,
  :func:`write_classes_qml`), and each class's polygon layer its colour
  (:func:`add_gpkg_style` with ``fill``/``outline``).

Pure standard library + rasterio: nothing of QGIS is imported.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

#: the mask's colour table: value -> RGBA (alpha is dropped by TIFF palettes, kept in the QML)
MASK_COLORS: dict[int, tuple[int, int, int, int]] = {
    0: (255, 255, 255, 0),  # dry
    1: (30, 120, 255, 255),  # water
    255: (0, 0, 0, 0),  # nodata
}
#: flood polygon fill (RGBA) and outline (RGB) of the GeoPackage's default style
FILL_RGBA = (30, 120, 255, 110)
OUTLINE_RGB = (0, 70, 200)
#: dataset creation options of the GeoPackage (pyogrio ``dataset_options``)
GPKG_OPTIONS = {"VERSION": "1.2"}
STYLE_NAME = "geofloodsam flood"
#: ``flood``'s class raster: value -> (name, RGBA); 255 is nodata (clear)
CHANGE_CLASSES: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    0: ("dry", (255, 255, 255, 0)),
    1: ("flood", (255, 85, 0, 255)),
    2: ("permanent_water", (30, 120, 255, 255)),
    3: ("receded", (255, 220, 0, 255)),
}
CHANGE_NODATA = 255

_HEADER = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"


def _rgba(color: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in color)


def _hex(color: tuple[int, ...]) -> str:
    return "#" + "".join(f"{c:02x}" for c in color[:3])


def style_mask(dataset) -> None:
    """Give band 1 of an open (writable) rasterio mask dataset its colour table."""
    dataset.write_colormap(1, MASK_COLORS)


def mask_qml() -> str:
    """The QGIS raster style of a mask: paletted, dry transparent, water blue, nodata clear."""
    entries = "\n".join(
        f'        <paletteEntry value="{value}" color="{_hex(rgba)}" alpha="{rgba[3]}" '
        f'label="{label}"/>'
        for value, rgba, label in ((0, MASK_COLORS[0], "dry"), (1, MASK_COLORS[1], "water"))
    )
    return f"""{_HEADER}
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" opacity="1" alphaBand="-1" band="1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def style_classes(dataset) -> None:
    """Give band 1 of an open (writable) class raster its colour table."""
    colors = {value: rgba for value, (_, rgba) in CHANGE_CLASSES.items()}
    dataset.write_colormap(1, {**colors, CHANGE_NODATA: (0, 0, 0, 0)})


def _paletted_qml(entries: list[tuple[int, tuple[int, int, int, int], str]]) -> str:
    lines = "\n".join(
        f'        <paletteEntry value="{value}" color="{_hex(rgba)}" alpha="{rgba[3]}" '
        f'label="{label}"/>'
        for value, rgba, label in entries
    )
    return f"""{_HEADER}
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" opacity="1" alphaBand="-1" band="1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{lines}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def classes_qml() -> str:
    """The QGIS raster style of the class raster: paletted, dry transparent."""
    return _paletted_qml([(v, rgba, name) for v, (name, rgba) in CHANGE_CLASSES.items()])


def write_classes_qml(path: str | Path) -> Path:
    """Write :func:`classes_qml` to ``path`` (the class raster's name with ``.qml``)."""
    path = Path(path)
    path.write_text(classes_qml(), encoding="utf-8")
    return path


def write_mask_qml(path: str | Path) -> Path:
    """Write :func:`mask_qml` to ``path`` (the mask's name with ``.qml``); return it."""
    path = Path(path)
    path.write_text(mask_qml(), encoding="utf-8")
    return path


def polygon_qml(fill: tuple[int, ...] = FILL_RGBA, outline: tuple[int, ...] = OUTLINE_RGB) -> str:
    """The QGIS vector style of the flood polygons: a translucent blue single-symbol fill."""
    props = {
        "color": _rgba(fill),
        "style": "solid",
        "outline_color": _rgba((*outline[:3], 255)),
        "outline_style": "solid",
        "outline_width": "0.4",
        "outline_width_unit": "MM",
        "joinstyle": "bevel",
    }
    lines = "\n".join(f'          <prop k="{k}" v="{v}"/>' for k, v in props.items())
    return f"""{_HEADER}
<qgis version="3.22.0" styleCategories="Symbology">
  <renderer-v2 type="singleSymbol" symbollevels="0" forceraster="0" enableorderby="0">
    <symbols>
      <symbol type="fill" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
{lines}
        </layer>
      </symbol>
    </symbols>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <blendMode>0</blendMode>
  <featureBlendMode>0</featureBlendMode>
  <layerGeometryType>2</layerGeometryType>
</qgis>
"""


def polygon_sld(
    layer: str, fill: tuple[int, ...] = FILL_RGBA, outline: tuple[int, ...] = OUTLINE_RGB
) -> str:
    """The same polygon style as OGC SLD 1.1 (for other clients of ``layer_styles``)."""
    opacity = round(fill[3] / 255, 3)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<StyledLayerDescriptor xmlns="http://www.opengis.net/sld" xmlns:se="http://www.opengis.net/se"
 xmlns:ogc="http://www.opengis.net/ogc" version="1.1.0">
  <NamedLayer>
    <se:Name>{layer}</se:Name>
    <UserStyle>
      <se:Name>{STYLE_NAME}</se:Name>
      <se:FeatureTypeStyle>
        <se:Rule>
          <se:Name>flood</se:Name>
          <se:PolygonSymbolizer>
            <se:Fill>
              <se:SvgParameter name="fill">{_hex(fill)}</se:SvgParameter>
              <se:SvgParameter name="fill-opacity">{opacity}</se:SvgParameter>
            </se:Fill>
            <se:Stroke>
              <se:SvgParameter name="stroke">{_hex(outline)}</se:SvgParameter>
              <se:SvgParameter name="stroke-width">1</se:SvgParameter>
            </se:Stroke>
          </se:PolygonSymbolizer>
        </se:Rule>
      </se:FeatureTypeStyle>
    </UserStyle>
  </NamedLayer>
</StyledLayerDescriptor>
"""


_CREATE = """
CREATE TABLE IF NOT EXISTS layer_styles (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256),
  f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
  useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
  update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)"""


def add_gpkg_style(
    path: str | Path, layer: str, fill: tuple[int, ...] = FILL_RGBA,
    outline: tuple[int, ...] = OUTLINE_RGB,
) -> None:
    """Store the flood polygon style as ``layer``'s default in the GeoPackage's ``layer_styles``.

    ``fill`` (RGBA) and ``outline`` (RGB) colour it (default: translucent blue).

    The table is the one QGIS itself writes (registered in ``gpkg_contents`` as an
    attributes table); an older default style of the layer stops being the default.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    with sqlite3.connect(path) as con:
        row = con.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
        ).fetchone()
        if row is None:
            raise ValueError(f"{path} has no feature table {layer!r}")
        con.execute(_CREATE)
        con.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
            "description, last_change, srs_id) VALUES ('layer_styles', 'attributes', "
            "'layer_styles', '', ?, 0)",
            (now,),
        )
        con.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (layer,))
        con.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
            "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
            "owner, ui, update_time) VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, '', NULL, ?)",
            (
                layer, row[0], STYLE_NAME, polygon_qml(fill, outline),
                polygon_sld(layer, fill, outline),
                "flood polygons written by geofloodsam", now,
            ),
        )
    con.close()
