"""QGIS-ready outputs: the mask's colour table and .qml, the GeoPackage's version and style."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from geofloodsam.qgis import style as qgis_style
from geofloodsam.stitch.blend import write_blended
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.store import TileStore
from geofloodsam.vector.polygonize import write_gpkg


def fake_scene(width: int, height: int, valid: np.ndarray | None) -> SimpleNamespace:
    """What write_blended reads of a scene: size, georeferencing, validity."""
    return SimpleNamespace(
        width=width, height=height, crs="EPSG:32633",
        transform=Affine(2.0, 0, 500000.0, 0, -2.0, 5000000.0),
        all_valid=valid is None,
        read_valid=lambda w: valid[w.row_off : w.row_off + w.height,
                                   w.col_off : w.col_off + w.width],
    )


@pytest.mark.parametrize("with_nodata", [False, True])
def test_mask_cog_keeps_its_colour_table_and_its_values(tmp_path, with_nodata) -> None:
    width, height = 1100, 700  # overviews (and so the COG copy) have something to do
    yy, xx = np.mgrid[0:height, 0:width]
    prob = (0.5 + 0.5 * np.sin(xx / 50.0) * np.cos(yy / 40.0)).astype(np.float32)
    valid = None
    if with_nodata:
        valid = np.ones((height, width), bool)
        valid[:, :100] = False
    grid = TileGrid(width, height, 512, 128)
    store = TileStore(tmp_path / "tiles", prob_dtype=np.float32)
    for tile in grid:
        store.update(tile, 1, prob[tile.y0 : tile.y1, tile.x0 : tile.x1])
    cogs = write_blended(fake_scene(width, height, valid), grid, store, tmp_path, 0.5)
    expected = (prob > 0.5).astype(np.uint8)
    if with_nodata:
        expected[~valid] = 255
    with rasterio.open(cogs["mask"]) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.overviews(1), "no overviews: the COG copy was not exercised"
        np.testing.assert_array_equal(ds.read(1), expected)
        assert ds.nodata == 255
        assert ds.colorinterp[0] == rasterio.enums.ColorInterp.palette
        colours = ds.colormap(1)
    assert colours[1] == qgis_style.MASK_COLORS[1]  # water blue
    assert colours[0][:3] == qgis_style.MASK_COLORS[0][:3]  # dry white (TIFF has no alpha)
    assert colours[255][3] == 0  # nodata clear


def test_mask_qml_is_a_paletted_style_with_dry_transparent(tmp_path) -> None:
    path = qgis_style.write_mask_qml(tmp_path / "m.qml")
    root = ET.parse(path).getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = {e.get("value"): e for e in renderer.iter("paletteEntry")}
    assert entries["0"].get("alpha") == "0"
    assert entries["1"].get("alpha") == "255" and entries["1"].get("color") == "#1e78ff"


def styles(path) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(
            "SELECT f_table_name, f_geometry_column, useAsDefault, styleQML, styleSLD "
            "FROM layer_styles ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("n", [0, 2])
def test_gpkg_is_version_1_2_with_a_default_blue_style(tmp_path, n) -> None:
    frame = gpd.GeoDataFrame(
        {"area_m2": np.arange(n, dtype=float)},
        geometry=gpd.GeoSeries([shapely.box(i, 0, i + 1, 1) for i in range(n)], crs=32633),
    )
    path = tmp_path / "f.gpkg"
    write_gpkg(frame, path)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 10200  # GeoPackage 1.2.0
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        kinds = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents"))
    assert kinds == {"flood": "features", "layer_styles": "attributes"}
    ((table, geom_col, default, qml, sld),) = styles(path)
    assert (table, geom_col, default) == ("flood", "geom", 1)
    fill = ET.fromstring(qml.split("\n", 1)[1]).find(".//layer[@class='SimpleFill']")
    props = {p.get("k"): p.get("v") for p in fill.iter("prop")}
    assert props["color"] == "30,120,255,110"  # translucent blue
    assert "#1e78ff" in sld
    back = gpd.read_file(path, layer="flood")
    assert len(back) == n and back.crs == "EPSG:32633"


def test_restyling_keeps_one_default(tmp_path) -> None:
    path = tmp_path / "f.gpkg"
    write_gpkg(gpd.GeoDataFrame(geometry=gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=4326)), path)
    qgis_style.add_gpkg_style(path, "flood")
    assert [row[2] for row in styles(path)] == [0, 1]


def test_style_for_a_missing_layer_is_an_error(tmp_path) -> None:
    path = tmp_path / "f.gpkg"
    write_gpkg(gpd.GeoDataFrame(geometry=gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=4326)), path)
    with pytest.raises(ValueError, match="no feature table 'water'"):
        qgis_style.add_gpkg_style(path, "water")
