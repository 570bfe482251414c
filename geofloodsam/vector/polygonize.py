"""Water mask -> dissolved polygons with geodesic area, written to a GeoPackage.

The mask is vectorised one row strip at a time (:class:`StripPolygonizer`), so the scene is
never held whole. Each strip's 4-connected water components become polygons in full-raster
pixel coordinates (integers, exact); components that continue across a strip boundary are
joined by union-find from the two boundary rows and dissolved with shapely at the end, so
no straight seam is left along strip (or tile) edges. Each polygon carries the object id
that covers most of its pixels.

Polygons are then mapped to the raster CRS, filtered by ``--min-area`` (m²) and simplified
by ``--simplify`` (metres). ``area_m2`` is geodesic (on the CRS's own ellipsoid), so it is
right for projected and geographic CRSs alike.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from scipy import ndimage

from geofloodsam.geo.area import geodesic_areas, metres_to_crs_units
from geofloodsam.qgis import style as qgis_style

LAYER = "flood"
#: dry columns that split a strip into separately vectorised runs (fewer: one run)
MIN_GAP = 64
COLUMNS = ("area_m2", "object_id", "prompt_type", "model")


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class PixelPolygon:
    """A dissolved water polygon in full-raster pixel coordinates and its majority id."""

    geometry: shapely.Polygon
    object_index: int  # the id that covers most of its pixels (0: none)
    pixels: int


@dataclass
class StripPolygonizer:
    """Vectorise a mask given top to bottom in row strips; dissolve across strip boundaries."""

    width: int
    min_gap: int = MIN_GAP  # dry columns that split a strip into separately traced runs
    _geoms: list = field(default_factory=list)
    _hists: list = field(default_factory=list)
    _uf: _UnionFind = field(default_factory=_UnionFind)
    _last_row: np.ndarray | None = None  # global component index per column, -1 = dry
    _next_y: int = 0

    def add_strip(self, y0: int, water: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Add rows ``[y0, y0 + h)``: ``water`` (h, W) bool and the object ``ids`` per pixel."""
        if y0 != self._next_y or water.shape[1] != self.width:
            raise ValueError(f"strips must be added in order and {self.width} px wide")
        h = water.shape[0]
        self._next_y = y0 + h
        water = np.asarray(water, dtype=bool)
        first = np.full(self.width, -1, np.int64)
        last = np.full(self.width, -1, np.int64)
        # Label and trace only the runs of columns that hold water (no component crosses a
        # dry column): the cost follows the water, not the raster's width.
        parts = []
        for x0, x1 in wet_runs(water.any(axis=0), self.min_gap):
            labels, n = ndimage.label(water[:, x0:x1])  # 4-connectivity, as shapes below
            parts.append((x0, labels, n, _first_pixels(labels, n, x0)))
        # Number the components as one labelling of the full width would (raster scan order
        # of their first pixel), so the output does not depend on how the strip was split.
        keys = [key for *_, firsts in parts for key in firsts]
        rank = np.empty(len(keys), np.int64)
        rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
        offset, done = len(self._geoms), 0
        for _ in keys:
            self._uf.add()
        self._geoms.extend([None] * len(keys))
        self._hists.extend([None] * len(keys))
        for x0, labels, n, _ in parts:
            remap = np.concatenate([[-1], offset + rank[done : done + n]])
            done += n
            sub = water[:, x0 : x0 + labels.shape[1]]
            sub_ids = None if ids is None else ids[:, x0 : x0 + labels.shape[1]]
            for k, hist in enumerate(_histograms(labels, sub, sub_ids, n), start=1):
                self._hists[remap[k]] = hist
            shapes = features.shapes(
                labels, mask=sub, connectivity=4, transform=Affine.translation(x0, y0)
            )
            for geom, value in shapes:
                self._geoms[remap[int(value)]] = shapely.geometry.shape(geom)
            first[x0 : x0 + labels.shape[1]] = remap[labels[0]]
            last[x0 : x0 + labels.shape[1]] = remap[labels[-1]]
        if self._last_row is not None:
            both = (self._last_row >= 0) & (first >= 0)
            for a, b in set(zip(self._last_row[both].tolist(), first[both].tolist(), strict=True)):
                self._uf.union(a, b)
        self._last_row = last

    def polygons(self) -> list[PixelPolygon]:
        """The dissolved polygons (pixel coordinates), in order of their first row."""
        groups: dict[int, list[int]] = {}
        for i in range(len(self._geoms)):
            groups.setdefault(self._uf.find(i), []).append(i)
        out = []
        for members in groups.values():
            hist: Counter = Counter()
            for i in members:
                hist.update(self._hists[i])
            if len(members) == 1:
                geom = self._geoms[members[0]]
            else:  # exact integer coordinates: shared edges cancel, then drop collinear nodes
                geom = shapely.simplify(shapely.union_all([self._geoms[i] for i in members]), 0)
            for part in getattr(geom, "geoms", [geom]):
                out.append(PixelPolygon(part, _majority(hist), int(sum(hist.values()))))
        return out


def wet_runs(wet: np.ndarray, min_gap: int = MIN_GAP) -> list[tuple[int, int]]:
    """``[x0, x1)`` spans of the ``wet`` columns, split where ``min_gap`` (at least 1) or
    more columns in a row are dry: no 4- or 8-connected component crosses such a gap."""
    cols = np.flatnonzero(wet)
    if len(cols) == 0:
        return []
    breaks = np.flatnonzero(np.diff(cols) > max(min_gap, 1))
    starts = np.concatenate([[cols[0]], cols[breaks + 1]])
    ends = np.concatenate([cols[breaks], [cols[-1]]]) + 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _first_pixels(labels: np.ndarray, n: int, x0: int) -> list[tuple[int, int]]:
    """(row, column + ``x0``) of each component's first pixel in raster scan order."""
    out = []
    for k, box in enumerate(ndimage.find_objects(labels, n), start=1):
        row = box[0].start
        col = box[1].start + int(np.argmax(labels[row, box[1]] == k))
        out.append((row, col + x0))
    return out


def _histograms(labels: np.ndarray, water: np.ndarray, ids: np.ndarray | None, n: int) -> list:
    """Per component (1..n): Counter of object ids over its pixels."""
    lab = labels[water].astype(np.int64)
    if ids is None:
        counts = np.bincount(lab, minlength=n + 1)[1:]
        return [Counter({0: int(c)}) for c in counts]
    obj = ids[water].astype(np.int64)
    key = lab * (int(obj.max()) + 1) + obj
    uniq, counts = np.unique(key, return_counts=True)
    hists: list[Counter] = [Counter() for _ in range(n)]
    for k, c in zip(uniq.tolist(), counts.tolist(), strict=True):
        hists[k // (int(obj.max()) + 1) - 1][k % (int(obj.max()) + 1)] += c
    return hists


def _majority(hist: Counter) -> int:
    """Most frequent non-zero id (ties: the smallest), else 0."""
    nonzero = [(c, -k) for k, c in hist.items() if k != 0]
    return -max(nonzero)[1] if nonzero else 0


# --------------------------------------------------------------------------- the table
@dataclass
class PolygonTable:
    """The flood layer's rows, without pandas: geometries in ``crs`` and the columns."""

    geometries: list
    columns: dict[str, np.ndarray]  # COLUMNS, each as long as ``geometries``
    crs: object

    def __len__(self) -> int:
        return len(self.geometries)


def polygon_table(
    polygons: list[PixelPolygon],
    transform: Affine,
    crs,
    attributes: dict[int, dict] | None = None,
    model: str = "",
    min_area: float = 0.0,
    simplify: float = 0.0,
) -> PolygonTable:
    """Pixel polygons -> rows in ``crs`` with ``area_m2``, ``object_id``, ``prompt_type``,
    ``model``.

    ``attributes`` maps an internal object index to ``{"object_id": .., "prompt_type": ..}``.
    Polygons smaller than ``min_area`` m² are dropped; ``simplify`` is a tolerance in metres.
    """
    attributes = attributes or {}
    matrix = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    geoms = [shapely.affinity.affine_transform(p.geometry, matrix) for p in polygons]
    areas = geodesic_areas(geoms, crs)
    keep = areas >= min_area
    geoms = [g for g, k in zip(geoms, keep, strict=True) if k]
    polygons = [p for p, k in zip(polygons, keep, strict=True) if k]
    if simplify > 0 and geoms:
        tol = metres_to_crs_units(simplify, crs)
        geoms = list(shapely.simplify(np.array(geoms, dtype=object), tol, preserve_topology=True))
        areas = geodesic_areas(geoms, crs)
    else:
        areas = areas[keep]
    rows = [attributes.get(p.object_index, {}) for p in polygons]
    columns = {
        "area_m2": np.asarray(areas, dtype=np.float64),
        "object_id": np.array([int(r.get("object_id", 0)) for r in rows], dtype=np.int64),
        "prompt_type": np.array([str(r.get("prompt_type", "")) for r in rows], dtype=object),
        "model": np.array([model] * len(rows), dtype=object),
    }
    return PolygonTable(geoms, columns, crs)


def polygons_to_frame(
    polygons: list[PixelPolygon],
    transform: Affine,
    crs,
    attributes: dict[int, dict] | None = None,
    model: str = "",
    min_area: float = 0.0,
    simplify: float = 0.0,
):
    """:func:`polygon_table` as a GeoDataFrame (imports geopandas; ``segment`` does not)."""
    import geopandas as gpd
    import pandas as pd

    table = polygon_table(polygons, transform, crs, attributes, model, min_area, simplify)
    return gpd.GeoDataFrame(
        {name: pd.Series(values, dtype=values.dtype) for name, values in table.columns.items()},
        geometry=gpd.GeoSeries(table.geometries, crs=crs),
    )


def write_gpkg(rows, path: str | Path, layer: str = LAYER) -> None:
    """Write polygons (possibly none: a valid empty layer with its CRS) to a GeoPackage.

    ``rows``: a :class:`PolygonTable` (written with SQLite alone,
    :mod:`~geofloodsam.vector.geopackage`: pyogrio imports pandas and geopandas, most of a
    second of a short run) or a GeoDataFrame (through pyogrio).
    """
    if isinstance(rows, PolygonTable):
        from geofloodsam.vector.geopackage import write_polygon_layer

        write_polygon_layer(path, layer, rows.geometries, rows.columns, rows.crs)
    else:
        rows.to_file(path, layer=layer, driver="GPKG", engine="pyogrio",
                     geometry_type="Polygon", dataset_options=qgis_style.GPKG_OPTIONS)
    qgis_style.add_gpkg_style(path, layer)  # translucent blue by default in QGIS
