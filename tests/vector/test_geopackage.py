"""The GeoPackage writer of ``segment`` (SQLite alone) against GDAL's own (pyogrio)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import warnings

import numpy as np
import pyogrio
import pytest
import shapely
from pyogrio.raw import write

from geofloodsam.qgis.style import GPKG_OPTIONS
from geofloodsam.vector.geopackage import APPLICATION_ID, USER_VERSION, write_polygon_layer

LAEA = "+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m +no_defs"
GEOMS = [
    shapely.box(10, 10, 20, 30),
    shapely.Polygon([(0, 0), (5, 0), (5, 5), (0, 5)], [[(1, 1), (2, 1), (2, 2), (1, 2)]]),
    shapely.box(-40.5, 7.25, -30.125, 8.0),
]


def _columns(n: int) -> dict[str, np.ndarray]:
    return {
        "area_m2": np.arange(n, dtype=np.float64) * 1.5,
        "object_id": np.arange(n, dtype=np.int64) + 3,
        "prompt_type": np.array(["box", "none", "point"][:n], dtype=object),
        "model": np.array(["vit_t:satellite"] * n, dtype=object),
    }


def _with_gdal(path, geoms, columns, crs) -> None:
    import pyproj

    crs = pyproj.CRS.from_user_input(crs)
    code = crs.to_epsg()
    write(path, geometry=shapely.to_wkb(np.array(geoms, dtype=object)),
          field_data=list(columns.values()), fields=list(columns), layer="flood",
          driver="GPKG", geometry_type="Polygon",
          crs=f"EPSG:{code}" if code else crs.to_wkt("WKT1_GDAL"), dataset_options=GPKG_OPTIONS)


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32633", LAEA])
@pytest.mark.parametrize("n", [0, 1, 3])
def test_reads_back_as_gdals_own(tmp_path, crs: str, n: int) -> None:
    ours, gdals = tmp_path / "ours.gpkg", tmp_path / "gdal.gpkg"
    write_polygon_layer(ours, "flood", GEOMS[:n], _columns(n), crs)
    _with_gdal(gdals, GEOMS[:n], _columns(n), crs)
    a, b = pyogrio.read_info(ours, layer="flood"), pyogrio.read_info(gdals, layer="flood")
    for key in ("crs", "geometry_type", "features", "encoding"):
        assert a[key] == b[key], key
    assert list(a["fields"]) == list(b["fields"]) and list(a["dtypes"]) == list(b["dtypes"])
    np.testing.assert_array_equal(a["total_bounds"], b["total_bounds"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty frame's dtype notes
        frame_a = pyogrio.read_dataframe(ours, layer="flood")
        frame_b = pyogrio.read_dataframe(gdals, layer="flood")
    assert frame_a.crs == frame_b.crs
    assert frame_a.drop(columns="geometry").equals(frame_b.drop(columns="geometry"))
    assert list(frame_a.geometry.to_wkb()) == list(frame_b.geometry.to_wkb())


def test_file_is_a_geopackage_with_its_spatial_index(tmp_path) -> None:
    path = tmp_path / "f.gpkg"
    write_polygon_layer(path, "flood", GEOMS, _columns(3), "EPSG:32633")
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert con.execute("PRAGMA user_version").fetchone()[0] == USER_VERSION
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT extension_name FROM gpkg_extensions").fetchall() == [
            ("gpkg_rtree_index",)]
        assert con.execute("SELECT count(*) FROM rtree_flood_geom").fetchone()[0] == 3
    con.close()
    hits = pyogrio.read_dataframe(path, layer="flood", bbox=(9, 9, 11, 11))  # via the index
    assert list(hits["object_id"]) == [3]


def test_gdal_edits_keep_the_index_in_step(tmp_path) -> None:
    """GDAL appends to the layer: the R-tree triggers (GDAL's functions) fire."""
    path = tmp_path / "f.gpkg"
    write_polygon_layer(path, "flood", GEOMS[:1], _columns(1), "EPSG:32633")
    write(path, geometry=shapely.to_wkb(np.array([shapely.box(100, 100, 120, 130)])),
          field_data=list(_columns(1).values()), fields=list(_columns(1)), layer="flood",
          driver="GPKG", geometry_type="Polygon", crs="EPSG:32633", append=True)
    hits = pyogrio.read_dataframe(path, layer="flood", bbox=(99, 99, 101, 101))
    assert len(hits) == 1 and hits.geometry[0].bounds == (100, 100, 120, 130)


def test_an_old_file_is_replaced(tmp_path) -> None:
    path = tmp_path / "f.gpkg"
    write_polygon_layer(path, "flood", GEOMS, _columns(3), "EPSG:32633")
    write_polygon_layer(path, "flood", GEOMS[:1], _columns(1), "EPSG:4326")
    info = pyogrio.read_info(path, layer="flood")
    assert info["features"] == 1 and info["crs"] == "EPSG:4326"


def test_index_run_imports_no_pandas_or_gdal_bindings(tmp_path, write_chip_set) -> None:
    """``segment --method index`` writes its GeoPackage without pyogrio, pandas, geopandas."""
    chip = write_chip_set(tmp_path / "chips", sensors=("s1",)) / "S1Hand" / "Alpha_1_S1Hand.tif"
    check = (
        "import sys; from geofloodsam.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    assert not e.code, f'exit status {e.code}'\n"
        "loaded = [m for m in ('pandas', 'geopandas', 'pyogrio') if m in sys.modules]\n"
        "assert not loaded, f'imported {loaded}'\n"
    )
    env = {**os.environ, "GEOFLOODSAM_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-c", check, "segment", str(chip), "--method",
                          "index", "-o", str(tmp_path / "out"), "-q"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    gpkg = next((tmp_path / "out").glob("*_flood.gpkg"))
    assert pyogrio.read_info(gpkg, layer="flood")["geometry_type"] == "Polygon"
