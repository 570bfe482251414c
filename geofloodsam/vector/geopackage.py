"""A GeoPackage 1.2 layer of polygons, written with Python's ``sqlite3`` alone.

``segment`` writes one flood layer per scene. Writing it through GDAL (pyogrio) costs the
import of pyogrio, which imports geopandas and pandas whenever they are installed: 0.55-0.6
s on a 2-core AVX2 CPU, a quarter of a ``--method index`` run (``docs/performance.md``).
A GeoPackage is an SQLite file with a few tables the standard (OGC 12-128r18, version 1.2)
names, so this module writes those directly, as GDAL does:

* ``gpkg_spatial_ref_sys`` (its three required rows, and the layer's CRS: the EPSG code
  where it has one, else a CRS of organisation ``NONE`` with its WKT), ``gpkg_contents``
  (the layer and its extent), ``gpkg_geometry_columns``;
* the feature table: ``fid``, ``geom`` (GeoPackage binary: the ``GP`` header with the
  extent, then little-endian WKB) and one column per attribute;
* the R-tree spatial index (``gpkg_rtree_index`` extension) with GDAL's triggers, so that a
  QGIS or GDAL edit keeps it in step.

``application_id`` is ``GPKG`` and ``user_version`` 10200 (GeoPackage 1.2: QGIS 3.22 LTR
warns on 1.4). The styles table is :func:`geofloodsam.qgis.style.add_gpkg_style`'s.
"""

from __future__ import annotations

import sqlite3
import struct
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import shapely

#: 'GPKG' as a 32-bit integer, and GeoPackage 1.2
APPLICATION_ID, USER_VERSION = 0x47504B47, 10200
#: the srs_id of a CRS without an EPSG code (GDAL's first free one)
CUSTOM_SRS_ID = 100000
RTREE_URL = "http://www.geopackage.org/spec120/#extension_rtree"

_TABLES = (
    "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL "
    "PRIMARY KEY, organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, "
    "definition TEXT NOT NULL, description TEXT)",
    "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT "
    "NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL "
    "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, "
    "max_y DOUBLE, srs_id INTEGER, CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES "
    "gpkg_spatial_ref_sys(srs_id))",
    "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
    "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT "
    "NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), CONSTRAINT "
    "uk_gc_table_name UNIQUE (table_name), CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) "
    "REFERENCES gpkg_contents(table_name), CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) "
    "REFERENCES gpkg_spatial_ref_sys (srs_id))",
    "CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, extension_name TEXT NOT "
    "NULL, definition TEXT NOT NULL, scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE "
    "(table_name, column_name, extension_name))",
)
_UNDEFINED_SRS = (
    ("Undefined Cartesian SRS", -1, "NONE", -1, "undefined",
     "undefined Cartesian coordinate reference system"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined",
     "undefined geographic coordinate reference system"),
)
#: GDAL's triggers that keep the R-tree in step with edits (``{t}`` table, ``{g}`` geometry)
_RTREE_TRIGGERS = (
    'CREATE TRIGGER "rtree_{t}_{g}_insert" AFTER INSERT ON "{t}" WHEN (new."{g}" NOT NULL '
    'AND NOT ST_IsEmpty(NEW."{g}")) BEGIN INSERT OR REPLACE INTO "rtree_{t}_{g}" VALUES '
    '(NEW."fid", ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"), ST_MinY(NEW."{g}"), '
    'ST_MaxY(NEW."{g}")); END',
    'CREATE TRIGGER "rtree_{t}_{g}_update1" AFTER UPDATE OF "{g}" ON "{t}" WHEN OLD."fid" = '
    'NEW."fid" AND (NEW."{g}" NOTNULL AND NOT ST_IsEmpty(NEW."{g}")) BEGIN INSERT OR REPLACE '
    'INTO "rtree_{t}_{g}" VALUES (NEW."fid", ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"), '
    'ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END',
    'CREATE TRIGGER "rtree_{t}_{g}_update2" AFTER UPDATE OF "{g}" ON "{t}" WHEN OLD."fid" = '
    'NEW."fid" AND (NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}")) BEGIN DELETE FROM '
    '"rtree_{t}_{g}" WHERE id = OLD."fid"; END',
    'CREATE TRIGGER "rtree_{t}_{g}_update3" AFTER UPDATE ON "{t}" WHEN OLD."fid" != NEW."fid" '
    'AND (NEW."{g}" NOTNULL AND NOT ST_IsEmpty(NEW."{g}")) BEGIN DELETE FROM "rtree_{t}_{g}" '
    'WHERE id = OLD."fid"; INSERT OR REPLACE INTO "rtree_{t}_{g}" VALUES (NEW."fid", '
    'ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"), ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END',
    'CREATE TRIGGER "rtree_{t}_{g}_update4" AFTER UPDATE ON "{t}" WHEN OLD."fid" != NEW."fid" '
    'AND (NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}")) BEGIN DELETE FROM "rtree_{t}_{g}" WHERE '
    'id IN (OLD."fid", NEW."fid"); END',
    'CREATE TRIGGER "rtree_{t}_{g}_delete" AFTER DELETE ON "{t}" WHEN old."{g}" NOT NULL '
    'BEGIN DELETE FROM "rtree_{t}_{g}" WHERE id = OLD."fid"; END',
)


def srs_row(crs) -> tuple:
    """The ``gpkg_spatial_ref_sys`` row of ``crs`` (anything pyproj reads)."""
    import pyproj

    crs = pyproj.CRS.from_user_input(crs)
    code = crs.to_epsg()
    wkt = crs.to_wkt("WKT1_GDAL")
    if code:
        return crs.name, int(code), "EPSG", int(code), wkt, None
    return crs.name, CUSTOM_SRS_ID, "NONE", CUSTOM_SRS_ID, wkt, None


def geometry_blobs(geometries, srs_id: int) -> tuple[list[bytes], np.ndarray]:
    """GeoPackage binary of each geometry (header with its xy extent, little-endian WKB),
    and the extents ``(N, 4)`` as min x, min y, max x, max y."""
    geoms = np.array(geometries, dtype=object)
    bounds = shapely.bounds(geoms).reshape(-1, 4) if len(geoms) else np.zeros((0, 4))
    wkb = shapely.to_wkb(geoms, byte_order=1) if len(geoms) else []
    head = b"GP\x00\x03" + struct.pack("<i", srs_id)  # version 0; little-endian, xy extent
    blobs = [
        head + struct.pack("<4d", b[0], b[2], b[1], b[3]) + w
        for b, w in zip(bounds, wkb, strict=True)
    ]
    return blobs, bounds


def _sql_type(values: np.ndarray) -> str:
    if values.dtype.kind == "b":
        return "BOOLEAN"
    if values.dtype.kind in "iu":
        return "INTEGER"
    if values.dtype.kind == "f":
        return "REAL"
    return "TEXT"


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def write_polygon_layer(
    path: str | Path, layer: str, geometries, columns: dict[str, np.ndarray], crs
) -> None:
    """Write ``geometries`` (shapely polygons in ``crs``) with ``columns`` (name -> array as
    long as ``geometries``) as the polygon layer ``layer`` of a new GeoPackage at ``path``
    (an existing file there is replaced)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    srs = srs_row(crs)
    blobs, bounds = geometry_blobs(geometries, srs[1])
    extent = (
        (None,) * 4 if not len(bounds)
        else (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    names = list(columns)
    fields = "".join(f', "{n}" {_sql_type(np.asarray(columns[n]))}' for n in names)
    rows = [
        (fid, blob, *(_plain(columns[n][fid - 1]) for n in names))
        for fid, blob in enumerate(blobs, start=1)
    ]
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {USER_VERSION}")
            for sql in _TABLES:
                con.execute(sql)
            con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
                            [*_UNDEFINED_SRS, srs])
            con.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change, min_x, min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, "
                "'', ?, ?, ?, ?, ?, ?)", (layer, layer, now, *map(_plain, extent), srs[1]),
            )
            con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POLYGON', ?, 0, "
                        "0)", (layer, srs[1]))
            con.execute(f'CREATE TABLE "{layer}" ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT '
                        f'NULL, "geom" POLYGON{fields})')
            marks = ", ".join("?" * (2 + len(names)))
            con.executemany(f'INSERT INTO "{layer}" VALUES ({marks})', rows)
            _rtree(con, layer, bounds)
    finally:
        con.close()


def _rtree(con: sqlite3.Connection, layer: str, bounds: np.ndarray) -> None:
    """The layer's R-tree index, filled, with the triggers that keep it so."""
    table = f"rtree_{layer}_geom"
    con.execute(f'CREATE VIRTUAL TABLE "{table}" USING rtree(id, minx, maxx, miny, maxy)')
    con.executemany(
        f'INSERT INTO "{table}" VALUES (?, ?, ?, ?, ?)',
        [(fid, *(float(v) for v in (b[0], b[2], b[1], b[3])))
         for fid, b in enumerate(bounds, start=1)],
    )
    con.execute("INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', ?, "
                "'write-only')", (layer, RTREE_URL))
    for sql in _RTREE_TRIGGERS:
        con.execute(sql.format(t=layer, g="geom"))
