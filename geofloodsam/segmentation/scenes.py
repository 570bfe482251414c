"""Several scenes in one run: scene lists, footprints, one band layout, prompts per scene.

``geofloodsam segment`` takes ``SCENE...`` arguments; an argument ending in ``.txt``,
``.lst`` or ``.list`` is a scene list instead: one raster path per line, blank lines and
lines starting with ``#`` ignored, relative paths taken relative to the list file::

    paths = expand_scene_args(["a.tif", "more_scenes.txt"])
    scenes = describe_scenes(paths, bands="4,3,2")     # checks one --bands serves them all
    frame = read_prompt_frame("clicks.gpkg")           # from geofloodsam.vector.prompts
    assignment = assign_features(frame, scenes)        # which features go to which scene
    assignment.indices[0]                              # rows of ``frame`` inside scenes[0]

A feature goes to every scene that contains it once reprojected to that scene's CRS, so a
feature in the overlap of two scenes prompts both. "Contains" uses the rule of
:func:`geofloodsam.vector.prompts.read_prompts`, so that a scene given a feature here finds it
there too: a point (or one vertex of a MultiPoint) lies in the half-open pixel extent
``[0, width) x [0, height)``; a polygon's bounds overlap that extent.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from affine import Affine

from geofloodsam.errors import GeofloodsamError
from geofloodsam.geo import transforms
from geofloodsam.geo.boxes import Box

#: an argument with one of these suffixes is a scene list, not a raster
LIST_SUFFIXES = (".txt", ".lst", ".list")
POINT_TYPES = ("Point", "MultiPoint")


# --------------------------------------------------------------------------- scene lists
def is_scene_list(path: str | Path) -> bool:
    """Whether ``path`` names a scene list (by its suffix) rather than a raster."""
    return Path(path).suffix.lower() in LIST_SUFFIXES


def read_scene_list(path: str | Path) -> list[Path]:
    """The raster paths listed in a text file (``#`` comments, paths relative to the file)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise GeofloodsamError(f"scene list {path} {what}: give a text file, one raster a line.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GeofloodsamError(
            f"cannot read scene list {path} ({type(exc).__name__}): give a UTF-8 text file, "
            "one raster path a line."
        ) from None
    out: list[Path] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        scene = Path(text).expanduser()
        if not scene.is_absolute():
            scene = path.parent / scene
        if not scene.is_file():
            raise GeofloodsamError(
                f"scene list {path}, line {number}: {text} not found (paths are relative to "
                "the list file): fix or remove the line."
            )
        out.append(scene)
    if not out:
        raise GeofloodsamError(f"scene list {path} lists no scenes: add one raster path a line.")
    return out


def expand_scene_args(args: Iterable[str | Path]) -> list[Path]:
    """Rasters and scene lists -> raster paths in the order given; duplicates are an error."""
    out: list[Path] = []
    for arg in args:
        out += read_scene_list(arg) if is_scene_list(arg) else [Path(arg)]
    if not out:
        raise GeofloodsamError("no scene given: pass one or more rasters, or a scene list (.txt).")
    seen: dict[Path, Path] = {}
    for path in out:
        key = path.resolve()
        if key in seen:
            raise GeofloodsamError(
                f"scene {path} is given twice (also as {seen[key]}): each scene once, please."
            )
        seen[key] = path
    return out


def check_output_stems(paths: Sequence[Path], next_to_scenes: bool = False) -> None:
    """Scenes written into one folder need distinct file stems (``<stem>_mask.tif``...).

    All scenes write into one OUTDIR, or, with ``next_to_scenes``, each into its own folder.
    """
    seen: dict[tuple, Path] = {}
    for path in paths:
        key = (Path(path).resolve().parent if next_to_scenes else None, path.stem)
        if key in seen:
            where = "in their folder" if next_to_scenes else "in one -o OUTDIR"
            fix = ", or leave -o out to write each scene's outputs next to it"
            fix = "" if next_to_scenes else fix
            raise GeofloodsamError(
                f"scenes {seen[key]} and {path} share the name {path.stem!r}, so their "
                f"outputs {where} would collide: rename one{fix}."
            )
        seen[key] = path


# --------------------------------------------------------------------------- scene metadata
@dataclass(frozen=True)
class SceneInfo:
    """What a multi-scene run needs to know of a scene without reading its pixels."""

    path: Path
    crs: object  # rasterio CRS
    transform: Affine
    width: int
    height: int
    dtypes: tuple[str, ...]  # every band's data type

    @property
    def count(self) -> int:
        """Number of bands."""
        return len(self.dtypes)

    @property
    def layout(self) -> tuple[int, tuple[str, ...]]:
        """Band count and data types: scenes of one run must share it."""
        return self.count, self.dtypes

    def describe_layout(self) -> str:
        """``"4 bands, uint16"`` or ``"2 bands, uint8/float32"``."""
        kinds = "/".join(dict.fromkeys(self.dtypes))
        return f"{self.count} band{'s' if self.count > 1 else ''}, {kinds}"

    @property
    def footprint(self) -> shapely.Polygon:
        """The raster's extent as a polygon in its own CRS (rotated grids included)."""
        cols = np.array([0.0, self.width, self.width, 0.0])
        rows = np.array([0.0, 0.0, self.height, self.height])
        xs, ys = transforms.pixel_to_world(self.transform, cols, rows)
        return shapely.Polygon(np.column_stack([xs, ys]))


def read_scene_info(path: str | Path) -> SceneInfo:
    """Open ``path`` (same checks and messages as a single-scene run) and describe it."""
    from geofloodsam.raster.scene import Scene

    with Scene.open(path, bands=(1,)) as scene:
        ds = scene.ds
        return SceneInfo(
            path=Path(path),
            crs=ds.crs,
            transform=ds.transform,
            width=int(ds.width),
            height=int(ds.height),
            dtypes=tuple(str(d) for d in ds.dtypes),
        )


def check_band_layout(
    scenes: Sequence[SceneInfo], bands: str | Sequence[int] | None, sensor: str = "auto"
) -> None:
    """One ``--bands`` selection must mean the same bands in every scene.

    Scenes must share their band count and data types; the selection is then checked once
    (a missing band, or two bands without ``--bands``, gives the single-scene message).
    """
    from geofloodsam.raster.scene import Scene

    if not scenes:
        return
    first = scenes[0]
    for other in scenes[1:]:
        if other.layout != first.layout:
            raise GeofloodsamError(
                f"scenes have different band layouts ({first.path}: "
                f"{first.describe_layout()}; {other.path}: {other.describe_layout()}), so one "
                "--bands cannot serve them all: run them in separate commands."
            )
    Scene.open(first.path, bands, sensor=sensor).close()


def describe_scenes(
    paths: Sequence[str | Path], bands: str | Sequence[int] | None, sensor: str = "auto"
) -> list[SceneInfo]:
    """Describe every scene and check that the band selection ``bands`` fits all of them."""
    scenes = [read_scene_info(p) for p in paths]
    check_band_layout(scenes, bands, sensor)
    return scenes


# --------------------------------------------------------------------------- prompts

def water_features(frame) -> np.ndarray:
    """(N,) bool: features that can make an object on their own (boxes, label-1 points).

    A scene that receives only label-0 points has no object to segment.
    """
    from geofloodsam.vector import prompts

    is_point = frame.geom_type.isin(POINT_TYPES).to_numpy()
    column = prompts._column(frame, "label")
    if column is None:
        return np.ones(len(frame), dtype=bool)
    labels = np.array([prompts._label_value(v) for v in frame[column].tolist()], dtype=object)
    return ~is_point | (labels == 1)


@dataclass
class Assignment:
    """Which prompt features (row positions of the frame) fall in which scene."""

    scenes: list[SceneInfo]
    inside: np.ndarray  # (n_features, n_scenes) bool
    water: np.ndarray  # (n_features,) bool: boxes and label-1 points (see water_features)

    @property
    def indices(self) -> list[np.ndarray]:
        """Per scene, the row positions of its features (in file order)."""
        return [np.flatnonzero(self.inside[:, j]) for j in range(len(self.scenes))]

    @property
    def outside(self) -> np.ndarray:
        """Row positions of the features that lie in no scene."""
        return np.flatnonzero(~self.inside.any(axis=1))

    @property
    def n_overlap(self) -> int:
        """How many features fall in more than one scene."""
        return int((self.inside.sum(axis=1) > 1).sum())

    @property
    def prompted(self) -> np.ndarray:
        """(n_scenes,) bool: scenes with something to segment (a box or a water point)."""
        return (self.inside & self.water[:, None]).any(axis=0)

    def summary(self) -> str:
        """One line: features per scene, in overlaps and outside."""
        per = ", ".join(
            f"{s.path.name}: {ix.size}" for s, ix in zip(self.scenes, self.indices, strict=True)
        )
        return (
            f"{len(self.inside)} prompt features -> {per}; {self.n_overlap} in overlaps, "
            f"{self.outside.size} outside every scene"
        )


def features_inside(geoms, scene: SceneInfo) -> np.ndarray:
    """(N,) bool: which geometries (already in ``scene.crs``) lie inside the scene.

    The rule of :func:`geofloodsam.vector.prompts.read_prompts`, from
    :mod:`geofloodsam.geo.transforms` (``pixels_inside``, ``clip_box``).
    """
    values = np.asarray(list(geoms), dtype=object)
    out = np.zeros(len(values), dtype=bool)
    for i, geom in enumerate(values):
        if geom is None or geom.is_empty:
            continue
        xy = shapely.get_coordinates(geom)
        cols, rows = transforms.world_to_pixel(scene.transform, xy[:, 0], xy[:, 1])
        if geom.geom_type in POINT_TYPES:
            out[i] = bool(transforms.pixels_inside(cols, rows, scene.width, scene.height).any())
        else:
            bounds = Box(cols.min(), rows.min(), cols.max(), rows.max())
            out[i] = transforms.clip_box(bounds, scene.width, scene.height) is not None
    return out


def assign_features(frame, scenes: Sequence[SceneInfo], warn: bool = True) -> Assignment:
    """Give each prompt feature to every scene that contains it (after reprojection).

    ``frame`` is a GeoDataFrame with its CRS set (see :func:`read_prompt_frame`). Features
    in no scene are counted and, with ``warn``, reported with a :class:`UserWarning`; if no
    feature lies in any scene, a :class:`GeofloodsamError` is raised.
    """
    import pyproj

    if frame.crs is None:
        raise GeofloodsamError("prompt features have no CRS: pass --prompts-crs EPSG:XXXX.")
    inside = np.zeros((len(frame), len(scenes)), dtype=bool)
    reprojected: dict[str, np.ndarray] = {}
    for j, scene in enumerate(scenes):
        key = pyproj.CRS.from_user_input(scene.crs).to_wkt()
        if key not in reprojected:
            geoms = transforms.reproject_geometries(frame.geometry, frame.crs, scene.crs)
            reprojected[key] = geoms.values
        inside[:, j] = features_inside(reprojected[key], scene)
    assignment = Assignment(list(scenes), inside, water_features(frame))
    outside = assignment.outside.size
    if not assignment.prompted.any():
        raise GeofloodsamError(
            f"none of the {len(frame)} prompt features lies inside any of the {len(scenes)} "
            f"scenes: check that they cover the scenes and that their CRS "
            f"({frame.crs.to_string()}) is right (--prompts-crs)."
        )
    if outside and warn:
        warnings.warn(
            f"{outside} of {len(frame)} prompt features lie outside every scene and are ignored.",
            UserWarning,
            stacklevel=2,
        )
    return assignment
