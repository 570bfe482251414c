"""Multi-scene input: scene lists, band layouts, footprints, prompt features per scene."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from geofloodsam.errors import GeofloodsamError
from geofloodsam.segmentation.scenes import (
    assign_features,
    check_band_layout,
    check_output_stems,
    describe_scenes,
    expand_scene_args,
    read_scene_info,
    read_scene_list,
    water_features,
)
from geofloodsam.vector.prompts import read_prompt_frame, read_prompts

UTM = "EPSG:32633"
LAEA = "EPSG:3035"
PIXEL = 2.0
A_ORIGIN = (500000.0, 5000000.0)  # scene A: 400 x 300 px in UTM 33N
B_ORIGIN_UTM = (500600.0, 4999900.0)  # scene B starts here, but is written in EPSG:3035


def write_raster(path: Path, crs: str, origin, width=400, height=300, count=3, dtype="uint8"):
    """A small georeferenced raster (content irrelevant here)."""
    transform = Affine(PIXEL, 0, origin[0], 0, -PIXEL, origin[1])
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype,
        crs=crs, transform=transform,
    ) as dst:
        dst.write(np.full((count, height, width), 50, dtype=dtype))
    return path


def write_geojson(path: Path, features: list[dict], crs: str | None = "EPSG:4326") -> Path:
    collection = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        name = "urn:ogc:def:crs:OGC:1.3:CRS84" if crs == "EPSG:4326" else crs
        collection["crs"] = {"type": "name", "properties": {"name": name}}
    path.write_text(json.dumps(collection))
    return path


def point(lon: float, lat: float, **props) -> dict:
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Point", "coordinates": [lon, lat]}}


def box(coords: list[tuple[float, float]], **props) -> dict:
    ring = [list(c) for c in coords] + [list(coords[0])]
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory) -> tuple[Path, Path]:
    """Scene A (UTM 33N) and scene B (EPSG:3035) overlapping over x = 500600..500800 (UTM)."""
    folder = tmp_path_factory.mktemp("scenes")
    a = write_raster(folder / "a.tif", UTM, A_ORIGIN)
    to_laea = Transformer.from_crs(UTM, LAEA, always_xy=True)
    b = write_raster(folder / "b.tif", LAEA, to_laea.transform(*B_ORIGIN_UTM))
    return a, b


def lonlat(x: float, y: float) -> tuple[float, float]:
    return Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)


# --------------------------------------------------------------------------- scene lists
def test_scene_list_comments_and_relative_paths(tmp_path, two_scenes):
    a, b = two_scenes
    sub = tmp_path / "lists"
    sub.mkdir()
    listing = sub / "scenes.txt"
    listing.write_text(f"# flood event 2026\n\n  {a}  \n# b is relative to the list:\n../b.tif\n")
    write_raster(tmp_path / "b.tif", UTM, A_ORIGIN)
    assert read_scene_list(listing) == [a, sub / "../b.tif"]
    assert expand_scene_args([str(b), listing]) == [b, a, sub / "../b.tif"]


@pytest.mark.parametrize(
    "content, match",
    [
        ("# only a comment\n\n", "lists no scenes"),
        ("missing.tif\n", "line 1: missing.tif not found"),
    ],
)
def test_scene_list_bad_content(tmp_path, content, match):
    listing = tmp_path / "scenes.lst"
    listing.write_text(content)
    with pytest.raises(GeofloodsamError, match=match) as err:
        expand_scene_args([listing])
    assert "\n" not in err.value.message


def test_scene_list_missing_file(tmp_path):
    with pytest.raises(GeofloodsamError, match="scene list .*nope.txt not found"):
        expand_scene_args([tmp_path / "nope.txt"])


def test_scene_given_twice(tmp_path, two_scenes):
    a, _ = two_scenes
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"{a}\n")
    with pytest.raises(GeofloodsamError, match="given twice"):
        expand_scene_args([a, listing])


def test_no_scene():
    with pytest.raises(GeofloodsamError, match="no scene given"):
        expand_scene_args([])


def test_output_stems_collide(tmp_path):
    check_output_stems([tmp_path / "x" / "a.tif", tmp_path / "y" / "b.tif"])
    with pytest.raises(GeofloodsamError, match="share the name 'a'"):
        check_output_stems([tmp_path / "x" / "a.tif", tmp_path / "y" / "a.tif"])
    # outputs next to each scene: only scenes in one folder can collide
    check_output_stems([tmp_path / "x" / "a.tif", tmp_path / "y" / "a.tif"], next_to_scenes=True)
    with pytest.raises(GeofloodsamError, match="share the name 'a', so their outputs in their "
                                               "folder would collide: rename one.$"):
        check_output_stems([tmp_path / "x" / "a.tif", tmp_path / "x" / "a.vrt"],
                           next_to_scenes=True)


# --------------------------------------------------------------------------- band layouts
def test_same_layout_passes_and_describes(two_scenes):
    scenes = describe_scenes(two_scenes, bands="3,2,1")
    assert [s.layout for s in scenes] == [(3, ("uint8",) * 3)] * 2
    assert str(scenes[1].crs) == LAEA


@pytest.mark.parametrize(
    "count, dtype, bands, match",
    [
        (4, "uint16", None, r"different band layouts \(.*a.tif: 3 bands, uint8; .*c.tif: "
                            r"4 bands, uint16\)"),
        (3, "uint16", "1,2,3", "different band layouts"),
        (3, "uint8", "4,3,2", "band 4 does not exist"),
    ],
)
def test_band_layout_errors(tmp_path, two_scenes, count, dtype, bands, match):
    c = write_raster(tmp_path / "c.tif", UTM, A_ORIGIN, count=count, dtype=dtype)
    with pytest.raises(GeofloodsamError, match=match) as err:
        describe_scenes([two_scenes[0], c], bands=bands)
    assert "\n" not in err.value.message


def test_two_band_scenes_need_bands(tmp_path):
    c = write_raster(tmp_path / "c.tif", UTM, A_ORIGIN, count=2)
    d = write_raster(tmp_path / "d.tif", UTM, A_ORIGIN, count=2)
    infos = [read_scene_info(c), read_scene_info(d)]
    with pytest.raises(GeofloodsamError, match="has 2 bands: choose with --bands"):
        check_band_layout(infos, None)
    check_band_layout(infos, "1")


def test_footprint_is_the_extent(two_scenes):
    info = read_scene_info(two_scenes[0])
    with rasterio.open(two_scenes[0]) as ds:
        bounds = ds.bounds
    assert info.footprint.bounds == pytest.approx(tuple(bounds))
    assert info.footprint.area == pytest.approx(400 * 300 * PIXEL**2)


# --------------------------------------------------------------------------- assignment
@pytest.fixture()
def prompt_file(tmp_path) -> Path:
    """Features: in A only, in the overlap, in B only, outside both, a box over the overlap."""
    features = [
        point(*lonlat(500100, 4999700)),  # 0: A only
        point(*lonlat(500700, 4999800)),  # 1: overlap of A and B
        point(*lonlat(501100, 4999600)),  # 2: B only
        point(*lonlat(503000, 4990000)),  # 3: outside both
        box([lonlat(500650, 4999750), lonlat(500750, 4999750), lonlat(500750, 4999850),
             lonlat(500650, 4999850)]),  # 4: box in the overlap
        box([lonlat(500300, 4999500), lonlat(500500, 4999500), lonlat(500500, 4999550),
             lonlat(500300, 4999550)]),  # 5: box in A only
    ]
    return write_geojson(tmp_path / "prompts.geojson", features)


def test_assignment_overlap_and_outside(two_scenes, prompt_file):
    scenes = describe_scenes(two_scenes, None)
    frame = read_prompt_frame(prompt_file)
    with pytest.warns(UserWarning, match="1 of 6 prompt features lie outside every scene"):
        assignment = assign_features(frame, scenes)
    a, b = assignment.indices
    assert a.tolist() == [0, 1, 4, 5]
    assert b.tolist() == [1, 2, 4]
    assert assignment.outside.tolist() == [3]
    assert assignment.n_overlap == 2
    assert assignment.prompted.tolist() == [True, True]
    assert "6 prompt features -> a.tif: 4, b.tif: 3; 2 in overlaps, 1 outside" in (
        assignment.summary()
    )


def test_assignment_agrees_with_read_prompts(two_scenes, prompt_file):
    """A scene receives exactly the features that read_prompts finds inside it."""
    scenes = describe_scenes(two_scenes, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assignment = assign_features(read_prompt_frame(prompt_file), scenes)
    for scene, indices in zip(scenes, assignment.indices, strict=True):
        ps = read_prompts(prompt_file, scene.crs, scene.transform, scene.width, scene.height)
        kept = {o.object_id for o in ps.objects}
        inside = [i for i, oid in enumerate(ps.feature_objects) if oid in kept]
        assert inside == indices.tolist()


def test_prompts_in_a_scene_crs(two_scenes, tmp_path):
    """Features given in scene A's CRS are reprojected for scene B (EPSG:3035)."""
    features = [
        {"type": "Feature", "properties": {},
         "geometry": {"type": "Point", "coordinates": [500700.0, 4999800.0]}},
        {"type": "Feature", "properties": {},
         "geometry": {"type": "Point", "coordinates": [501100.0, 4999600.0]}},
    ]
    path = write_geojson(tmp_path / "utm.geojson", features, crs="urn:ogc:def:crs:EPSG::32633")
    assignment = assign_features(read_prompt_frame(path), describe_scenes(two_scenes, None))
    assert [ix.tolist() for ix in assignment.indices] == [[0], [0, 1]]


def test_label_zero_only_scene_is_not_prompted(two_scenes, tmp_path):
    features = [
        point(*lonlat(500100, 4999700), label=1),  # A
        point(*lonlat(501100, 4999600), label=0),  # B: land only
    ]
    path = write_geojson(tmp_path / "labels.geojson", features)
    frame = read_prompt_frame(path)
    assert water_features(frame).tolist() == [True, False]
    assignment = assign_features(frame, describe_scenes(two_scenes, None))
    assert assignment.prompted.tolist() == [True, False]


def test_all_features_outside(two_scenes, tmp_path):
    path = write_geojson(tmp_path / "far.geojson", [point(*lonlat(520000, 4980000))])
    with pytest.raises(GeofloodsamError, match="none of the 1 prompt features lies inside any "
                                              "of the 2 scenes") as err:
        assign_features(read_prompt_frame(path), describe_scenes(two_scenes, None))
    assert "\n" not in err.value.message


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_prompt_file_without_crs(two_scenes, tmp_path):
    import geopandas as gpd
    import shapely

    path = tmp_path / "nocrs.shp"
    gpd.GeoDataFrame(geometry=[shapely.Point(500100.0, 4999700.0)]).to_file(path)
    with pytest.raises(GeofloodsamError, match="has no CRS: pass --prompts-crs"):
        read_prompt_frame(path)
    frame = read_prompt_frame(path, prompts_crs=UTM)
    assert frame.crs.to_epsg() == 32633
    assignment = assign_features(frame, describe_scenes(two_scenes, None))
    assert [ix.tolist() for ix in assignment.indices] == [[0], []]
    assert assignment.prompted.tolist() == [True, False]
    with pytest.raises(GeofloodsamError, match="unknown --prompts-crs"):
        read_prompt_frame(path, prompts_crs="EPSG:nonsense")


def test_frame_without_crs_is_an_error(two_scenes, prompt_file):
    frame = read_prompt_frame(prompt_file).set_crs(None, allow_override=True)
    with pytest.raises(GeofloodsamError, match="no CRS"):
        assign_features(frame, describe_scenes(two_scenes, None))
