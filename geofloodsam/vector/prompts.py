"""Point and box prompts from a vector file (GeoJSON, GeoPackage, Shapefile) in raster pixels.

The file may use any CRS. Geometries are reprojected whole (densified) to the raster's CRS with
:func:`geofloodsam.geo.transforms.reproject_geometries`, then mapped to fractional pixel coordinates
of the raster (x = column, y = row, pixel centres at +0.5) with
:func:`geofloodsam.geo.transforms.world_to_pixel`.

* **Points / MultiPoints** are point prompts. An optional ``label`` column says 1 (water, the
  default without the column) or 0 (not water); a point whose ``label`` cell is empty (null,
  NaN) is left out, with a warning naming it (a missing answer is not taken as water). An
  optional ``object`` column groups several point features into one object (empty cells: the
  feature is its own object); without it every feature is its own object. Every object needs
  at least one water point.
* **Polygons / MultiPolygons** (boxes drawn in QGIS, or any outline) are box prompts: the
  bounds of the reprojected geometry in pixel space, clipped to the raster. Each polygon
  feature is its own object; the parts of a MultiPolygon are one object of several boxes, one
  per part (so separate ponds are not one box over everything between them). ``object`` does
  not group polygons, a ``label`` of 0 on a polygon is an error (SAM has no negative boxes),
  and so is a polygon of zero area (a line or point drawn as a polygon).
* A file with several layers (a GeoPackage) needs the layer named (``layer=``,
  ``--prompts-layer``); the error lists them.
* **Lines** and other geometry types are an error (a line's bounds is rarely the water body
  meant; draw a polygon or points instead).

Object ids count objects in the file's order from 1, whether or not they fall inside the
raster, so they stay stable when the same prompts are used on another scene.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import shapely
from affine import Affine

from geofloodsam.errors import GeofloodsamError
from geofloodsam.geo import transforms
from geofloodsam.geo.boxes import Box

#: the prompt type of promptless runs: no prompt from the user, so SAM is given the
#: whole-image box (:func:`whole_image_box`); one name in ``segment``'s polygons,
#: ``evaluate --prompt`` and fine-tuning's prompt kinds alike
NO_PROMPT = "none"
#: the prompt types ``evaluate --prompt`` scores: one point, the truth's box, no prompt
PROMPT_TYPES = ("point", "box", NO_PROMPT)
POINT_TYPES = ("Point", "MultiPoint")


def whole_image_box(width: float, height: float) -> Box:
    """The whole-image box of an image ``width`` x ``height`` pixels."""
    return Box(0.0, 0.0, float(width), float(height))
BOX_TYPES = ("Polygon", "MultiPolygon")


@dataclass
class PromptObject:
    """One object to segment: water points (plus optional negatives) or one box."""

    object_id: int
    kind: str  # "point" or "box"
    points: np.ndarray  # (K, 2) float64 raster pixel x, y; (0, 2) for boxes
    labels: np.ndarray  # (K,) int: 1 water, 0 not water
    box: Box | None = None  # pixel edges, clipped to the raster: the extent of ``boxes``
    #: (M, 4) the boxes given to SAM, rows of :class:`Box` fields: one per polygon part inside
    #: the raster (``box`` for one)
    boxes: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.box is not None and self.boxes is None:
            self.boxes = np.asarray(self.box, dtype=np.float64).reshape(1, 4)


@dataclass
class PromptSet:
    """All objects of a prompt file that fall inside the raster."""

    objects: list[PromptObject]
    n_features: int
    n_outside: int  # features dropped because they (or their object's water points) lie outside
    source_crs: str
    feature_objects: list[int] = field(default_factory=list)  # object id of each feature


def read_prompts(
    path: str | Path,
    crs,
    transform: Affine,
    width: int,
    height: int,
    prompts_crs: str | None = None,
    frame=None,
    layer: str | None = None,
) -> PromptSet:
    """Read point/box prompts from ``path`` into pixel space of a ``width`` x ``height`` raster.

    ``crs`` and ``transform`` are the raster's. ``prompts_crs`` sets the CRS of a file that has
    none (and overrides the file's own CRS if it has one). Raises :class:`GeofloodsamError`
    for an unreadable, empty or CRS-less file, unsupported geometries, bad labels, and when no
    feature lies inside the raster. ``frame``: the file as already read and checked by
    :func:`read_prompt_frame` (one file for many scenes is read once). ``layer``: the layer
    of a file with several.
    """
    path = Path(path)
    if frame is None:
        frame = read_prompt_frame(path, prompts_crs, layer)
    with warnings.catch_warnings():  # e.g. numpy's on coordinates that do not reproject
        warnings.simplefilter("ignore")
        return _from_frame(path, frame, crs, transform, width, height)


def read_prompt_frame(path: str | Path, prompts_crs: str | None = None, layer: str | None = None):
    """Read and check a prompts file once: a GeoDataFrame with its CRS set.

    ``prompts_crs`` sets the CRS of a file that has none (and overrides the file's own);
    ``layer`` chooses the layer of a file with several. One-line errors for an unreadable or
    empty file, several layers and none chosen, a file without CRS, unsupported or zero-area
    geometries and bad labels; a warning for points without a label (left out).
    """
    import pyproj

    path = Path(path)
    with warnings.catch_warnings():  # pyogrio / numpy warnings would precede a one-line error
        warnings.simplefilter("ignore")
        gdf = _read(path, layer)
    if prompts_crs:
        try:
            src_crs = pyproj.CRS.from_user_input(prompts_crs)
        except pyproj.exceptions.CRSError:
            raise GeofloodsamError(
                f"unknown --prompts-crs {prompts_crs!r}: give e.g. EPSG:4326."
            ) from None
        gdf = gdf.set_crs(src_crs, allow_override=True)
    elif gdf.crs is None:
        raise GeofloodsamError(
            f"prompts file {path} has no CRS: pass --prompts-crs EPSG:XXXX "
            "(the CRS its coordinates are in)."
        )
    _check_geometries(path, gdf)
    labels = _labels(path, gdf)  # label values are checked here too, before any work starts
    unlabelled = np.flatnonzero(labels < 0)
    if unlabelled.size:
        rows = ", ".join(str(i + 1) for i in unlabelled[:10])
        more = f" and {unlabelled.size - 10} more" if unlabelled.size > 10 else ""
        click.echo(
            f"Warning: {unlabelled.size} point feature(s) of {path} ({rows}{more}) have an "
            "empty label and are left out: give them 1 (water) or 0 (not water).",
            err=True,
        )
        if unlabelled.size == len(gdf):
            raise GeofloodsamError(
                f"every feature of prompts file {path} has an empty label: fill the `label` "
                "column with 1 (water) or 0 (not water)."
            )
    return gdf


def _from_frame(path: Path, gdf, crs, transform: Affine, width: int, height: int) -> PromptSet:
    """A checked frame (CRS set) -> the prompts inside the raster."""
    import pyproj

    labels = _labels(path, gdf)
    groups = _groups(gdf)
    dst_crs = pyproj.CRS.from_user_input(crs)
    geoms = transforms.reproject_geometries(gdf.geometry, gdf.crs, dst_crs).values
    to_pixel = _pixel_mapper(transform)
    return _assemble(
        path, gdf, geoms, labels, groups, to_pixel, width, height, gdf.crs.to_string()
    )


# --------------------------------------------------------------------------- reading
def _read(path: Path, layer: str | None = None):
    """The vector file as a GeoDataFrame (one-line error if it cannot be read or is empty)."""
    import geopandas as gpd
    import pyogrio

    if not path.exists():
        raise GeofloodsamError(f"prompts file {path} not found: check the path.")
    if path.is_dir() and path.suffix.lower() not in (".gdb",):
        raise GeofloodsamError(
            f"prompts file {path} is a folder: give a GeoJSON, GeoPackage or Shapefile."
        )
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception:  # noqa: BLE001 - unreadable: reported by read_file below
        layers = []
    if layer is not None and layers and layer not in layers:
        raise GeofloodsamError(
            f"prompts file {path} has no layer {layer!r}; its layers: {', '.join(layers)}. "
            "Fix --prompts-layer."
        )
    if layer is None and len(layers) > 1:
        raise GeofloodsamError(
            f"prompts file {path} has {len(layers)} layers ({', '.join(layers[:10])}): choose "
            "one with --prompts-layer NAME."
        )
    try:
        gdf = gpd.read_file(path, engine="pyogrio", layer=layer)
    except Exception as exc:  # pyogrio raises several types for unreadable data
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise GeofloodsamError(
            f"cannot read prompts file {path} ({reason[:200]}): give a GeoJSON, GeoPackage "
            "or Shapefile."
        ) from None
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise GeofloodsamError(
            f"prompts file {path} has no geometries (a table such as a CSV): give points or "
            "boxes in a GeoJSON, GeoPackage or Shapefile (convert with ogr2ogr or QGIS)."
        )
    if len(gdf) == 0:
        raise GeofloodsamError(
            f"prompts file {path} has no features: draw points or boxes on water first."
        )
    return gdf


def _check_geometries(path: Path, gdf) -> None:
    """Every feature has a point or polygon geometry."""
    missing = gdf.geometry.isna() | gdf.geometry.is_empty
    if missing.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(missing.to_numpy())[:5])
        raise GeofloodsamError(
            f"prompts file {path}: feature(s) {rows} have no geometry: delete or redraw them."
        )
    types = gdf.geom_type
    bad = ~types.isin(POINT_TYPES + BOX_TYPES)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise GeofloodsamError(
            f"prompts file {path}: unsupported geometry {types.iloc[first]} (feature "
            f"{first + 1}): use points (water clicks) or polygons (boxes)."
        )
    polygons = types.isin(BOX_TYPES).to_numpy()
    flat = polygons & ~(shapely.area(gdf.geometry.values) > 0)
    if flat.any():
        first = int(np.flatnonzero(flat)[0])
        raise GeofloodsamError(
            f"prompts file {path}: feature {first + 1} is a polygon of zero area (its corners "
            "lie on one line): redraw it as a box around the water, or use a point."
        )


def _column(gdf, name: str) -> str | None:
    """The column called ``name`` (case-insensitive), if any."""
    for col in gdf.columns:
        if col != gdf.geometry.name and str(col).lower() == name:
            return col
    return None


def _labels(path: Path, gdf) -> np.ndarray:
    """(F,) int labels: 1 water (the default without a column), 0 not water, -1 empty.

    An empty cell (null, NaN, blank) of a point is -1 (left out); of a polygon, 1 (boxes are
    water only).
    """
    col = _column(gdf, "label")
    out = np.ones(len(gdf), dtype=np.int64)
    if col is None:
        return out
    is_box = gdf.geom_type.isin(BOX_TYPES).to_numpy()
    for i, value in enumerate(gdf[col].tolist()):
        label = _label_value(value)
        if label == -1:
            out[i] = 1 if is_box[i] else -1
            continue
        if label is None:
            raise GeofloodsamError(
                f"prompts file {path}: feature {i + 1} has label {value!r}; "
                "labels must be 1 (water) or 0 (not water)."
            )
        if label == 0 and is_box[i]:
            raise GeofloodsamError(
                f"prompts file {path}: feature {i + 1} is a polygon with label 0; boxes mark "
                "water only: use points with label 0 for land."
            )
        out[i] = label
    return out


def _label_value(value) -> int | None:
    """1 / 0 from a cell (empty -> -1); None if the value is not a valid label."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return -1
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return -1
        return {"0": 0, "1": 1}.get(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number in (0.0, 1.0) else None


def _groups(gdf) -> list:
    """A hashable object key per feature (features sharing a key form one object)."""
    col = _column(gdf, "object")
    is_point = gdf.geom_type.isin(POINT_TYPES).to_numpy()
    keys: list = []
    values = gdf[col].tolist() if col is not None else [None] * len(gdf)
    for i, value in enumerate(values):
        empty = value is None or (isinstance(value, float) and math.isnan(value))
        empty = empty or (isinstance(value, str) and not value.strip())
        if not is_point[i] or empty:
            keys.append(("feature", i))
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            keys.append(("object", str(value).strip()))
    return keys


# --------------------------------------------------------------------------- geometry
def _pixel_mapper(transform: Affine):
    """A shapely coordinate function: raster CRS (N, 2) -> fractional pixel (N, 2)."""

    def to_pixel(coords: np.ndarray) -> np.ndarray:
        cols, rows = transforms.world_to_pixel(transform, coords[:, 0], coords[:, 1])
        return np.column_stack([cols, rows])

    return to_pixel


def _assemble(path, gdf, geoms, labels, groups, to_pixel, width, height, source_crs) -> PromptSet:
    """Group features into objects, keep what lies inside the raster."""
    order: dict = {}
    for key in groups:
        order.setdefault(key, len(order) + 1)
    feature_objects = [order[key] for key in groups]
    pts: dict[int, list[np.ndarray]] = {}
    labs: dict[int, list[np.ndarray]] = {}
    boxes: dict[int, np.ndarray] = {}
    members: dict[int, list[int]] = {}
    outside = np.zeros(len(gdf), dtype=bool)
    for i, (geom, oid) in enumerate(zip(geoms, feature_objects, strict=True)):
        if labels[i] < 0:  # a point with an empty label: left out (warned about)
            continue
        members.setdefault(oid, []).append(i)
        pixel_geom = shapely.transform(geom, to_pixel)
        if geom.geom_type in BOX_TYPES:
            parts = shapely.get_parts(pixel_geom)  # one box per part of a MultiPolygon
            clipped = [
                transforms.clip_box(part.bounds, width, height)
                for part in parts
            ]
            clipped = [b for b in clipped if b is not None]
            if not clipped:
                outside[i] = True
            else:
                boxes[oid] = np.stack(clipped)
            continue
        xy = shapely.get_coordinates(pixel_geom).astype(np.float64)
        inside = transforms.pixels_inside(xy[:, 0], xy[:, 1], width, height)
        if not inside.any():
            outside[i] = True
            continue
        pts.setdefault(oid, []).append(xy[inside])
        labs.setdefault(oid, []).append(np.full(int(inside.sum()), labels[i], dtype=np.int64))

    for oid, idx in members.items():  # an object must have a water point somewhere
        if oid not in boxes and not (labels[idx] == 1).any():
            raise GeofloodsamError(
                f"prompts file {path}: object {oid} (feature {idx[0] + 1}) has only label-0 "
                "points: group it with a water point via the `object` column, or label it 1."
            )
    objects: list[PromptObject] = []
    for oid in sorted(set(pts) | set(boxes)):
        if oid in boxes:
            parts = boxes[oid]
            extent = Box(*parts[:, :2].min(axis=0), *parts[:, 2:].max(axis=0))
            objects.append(
                PromptObject(
                    oid, "box", np.zeros((0, 2)), np.zeros(0, np.int64), extent, parts
                )
            )
            continue
        object_labels = np.concatenate(labs[oid])
        if not (object_labels == 1).any():  # its water points fell outside the raster
            outside[members[oid]] = True
            continue
        objects.append(PromptObject(oid, "point", np.concatenate(pts[oid]), object_labels, None))
    if not objects:
        raise GeofloodsamError(
            f"none of the {len(gdf)} prompt features in {path} lies inside the raster: "
            f"check that they cover the scene and that their CRS ({source_crs}) is right "
            "(--prompts-crs)."
        )
    return PromptSet(objects, len(gdf), int(outside.sum()), source_crs, feature_objects)

