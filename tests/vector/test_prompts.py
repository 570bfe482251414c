"""prompts: vector files in any CRS -> point/box prompts in raster pixels."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from affine import Affine

from geofloodsam.errors import GeofloodsamError
from geofloodsam.vector.prompts import read_prompts

CRS = "EPSG:32633"
TRANSFORM = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 5000000.0)
W, H = 3000, 2400


def world(col: float, row: float) -> tuple[float, float]:
    """Pixel (col, row) -> raster CRS coordinates (the affine, written out independently)."""
    return 500000.0 + 2.0 * col, 5000000.0 - 2.0 * row


def frame(geoms, crs=CRS, **columns) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=list(geoms), crs=crs)


def write(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    """Write with pyogrio; a Shapefile holds one geometry type, so points become MultiPoints."""
    kwargs = {"promote_to_multi": True} if path.suffix == ".shp" else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'crs' was not provided")
        gdf.to_file(path, engine="pyogrio", **kwargs)
    return path


def read(path: Path, **kwargs):
    return read_prompts(path, CRS, TRANSFORM, W, H, **kwargs)


@pytest.fixture
def points_frame() -> gpd.GeoDataFrame:
    """Three objects: a grouped pair plus a negative, a lone point and a MultiPoint."""
    pixels = [(100.5, 200.5), (1500.25, 30.75), (2999.5, 2399.5), (10.0, 10.0)]
    geoms = [shapely.Point(world(*p)) for p in pixels]
    geoms.append(shapely.MultiPoint([world(50.5, 60.5), world(70.5, 80.5)]))
    return frame(geoms, label=[1, 0, 1, 1, 1], object=["a", "a", None, "a", None])


# --------------------------------------------------------------------------- points
@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp"])
def test_points_grouping_and_labels(tmp_path, points_frame, suffix):
    ps = read(write(points_frame, tmp_path / f"p{suffix}"))
    assert ps.n_features == 5 and ps.n_outside == 0 and ps.source_crs == CRS
    assert [o.object_id for o in ps.objects] == [1, 2, 3]  # file order of first appearance
    a, lone, multi = ps.objects
    assert a.kind == "point" and a.box is None
    assert np.allclose(a.points, [(100.5, 200.5), (1500.25, 30.75), (10.0, 10.0)], atol=1e-6)
    assert a.labels.tolist() == [1, 0, 1]
    assert np.allclose(lone.points, [(2999.5, 2399.5)], atol=1e-6) and lone.labels.tolist() == [1]
    assert np.allclose(multi.points, [(50.5, 60.5), (70.5, 80.5)], atol=1e-6)
    assert ps.feature_objects == [1, 1, 2, 1, 3]


def test_without_columns_every_feature_is_a_water_object(tmp_path):
    gdf = frame([shapely.Point(world(5.5, 5.5)), shapely.Point(world(6.5, 9.5))])
    ps = read(write(gdf, tmp_path / "p.geojson"))
    assert [o.labels.tolist() for o in ps.objects] == [[1], [1]]


def test_label_spellings(tmp_path):
    geoms = [shapely.Point(world(i + 0.5, 5.5)) for i in range(4)]
    gdf = frame(geoms, label=["1", "0", "1", "1"], object=[1.0, 1.0, 1.0, np.nan])
    ps = read(write(gdf, tmp_path / "p.gpkg"))
    assert [o.labels.tolist() for o in ps.objects] == [[1, 0, 1], [1]]


@pytest.mark.parametrize("empty", [None, np.nan, " "])
def test_points_with_an_empty_label_are_left_out_with_a_warning(tmp_path, capsys, empty):
    geoms = [shapely.Point(world(i + 0.5, 5.5)) for i in range(3)]
    labels = ["1", empty, "0"] if isinstance(empty, str) else [1.0, empty, 0.0]
    ps = read(write(frame(geoms, label=labels, object=[1, 1, 1]), tmp_path / "p.gpkg"))
    assert [o.points[:, 0].tolist() for o in ps.objects] == [[0.5, 2.5]]
    assert [o.labels.tolist() for o in ps.objects] == [[1, 0]]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Warning: 1 point feature(s)") and "(2)" in err[0]


def test_every_label_empty_is_a_one_line_error(tmp_path, capsys):
    gdf = frame([shapely.Point(world(5.5, 5.5))], label=[np.nan])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(write(gdf, tmp_path / "p.gpkg"))
    assert_one_line(excinfo, "empty label")


def test_same_pixels_from_epsg4326_and_raster_crs(tmp_path, points_frame):
    utm = read(write(points_frame, tmp_path / "utm.geojson"))
    lonlat = read(write(points_frame.to_crs("EPSG:4326"), tmp_path / "ll.geojson"))
    assert lonlat.source_crs == "EPSG:4326"
    for a, b in zip(utm.objects, lonlat.objects, strict=True):
        assert np.abs(a.points - b.points).max() < 1e-6
        assert a.labels.tolist() == b.labels.tolist()


def test_points_outside_are_counted_and_dropped(tmp_path):
    geoms = [
        shapely.Point(world(10.5, 10.5)),
        shapely.Point(world(-0.5, 10.5)),  # left of the raster
        shapely.Point(world(W, 10.5)),  # x == width is outside
        shapely.MultiPoint([world(5.5, 5.5), world(5.5, H + 5)]),  # one vertex inside
    ]
    ps = read(write(frame(geoms), tmp_path / "p.geojson"))
    assert ps.n_features == 4 and ps.n_outside == 2
    assert [o.object_id for o in ps.objects] == [1, 4]
    assert np.allclose(ps.objects[1].points, [(5.5, 5.5)])


def test_object_whose_water_points_are_outside_is_dropped(tmp_path):
    geoms = [shapely.Point(world(-50, 10)), shapely.Point(world(20.5, 10.5)),
             shapely.Point(world(30.5, 30.5))]
    gdf = frame(geoms, label=[1, 0, 1], object=[1, 1, 2])
    ps = read(write(gdf, tmp_path / "p.geojson"))
    assert [o.object_id for o in ps.objects] == [2] and ps.n_outside == 2


# --------------------------------------------------------------------------- boxes
def test_polygon_becomes_a_clipped_box(tmp_path):
    x0, y0 = world(100, 500)
    x1, y1 = world(400, 300)
    inside = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    xa, ya = world(2900, 2300)
    xb, yb = world(3100, 2500)  # sticks out bottom right
    partly = shapely.MultiPolygon([shapely.box(xa, yb, xb, ya)])
    xo, yo = world(-300, -300)
    outside = shapely.box(xo - 100, yo, xo, yo + 100)
    ps = read(write(frame([inside, partly, outside]), tmp_path / "p.gpkg"))
    assert ps.n_outside == 1
    box, clipped = ps.objects
    assert box.kind == "box" and box.points.shape == (0, 2) and box.labels.size == 0
    assert np.allclose(box.box, [100, 300, 400, 500], atol=1e-6)
    assert np.allclose(clipped.box, [2900, 2300, W, H], atol=1e-6)


def test_multipolygon_parts_are_one_object_of_one_box_each(tmp_path):
    parts = []
    for c0, r0, c1, r1 in [(100, 100, 200, 180), (2000, 1500, 2100, 1600), (3500, 10, 3600, 90)]:
        (xa, ya), (xb, yb) = world(c0, r1), world(c1, r0)
        parts.append(shapely.box(xa, ya, xb, yb))
    ps = read(write(frame([shapely.MultiPolygon(parts)]), tmp_path / "p.gpkg"))
    (obj,) = ps.objects
    assert obj.kind == "box" and ps.n_outside == 0
    # the third part lies outside the raster (W = 3000): two boxes, not one over everything
    assert np.allclose(obj.boxes, [[100, 100, 200, 180], [2000, 1500, 2100, 1600]], atol=1e-6)
    assert np.allclose(obj.box, [100, 100, 2100, 1600], atol=1e-6)  # the extent


def test_box_in_epsg4326_uses_the_whole_reprojected_outline(tmp_path):
    """A big lon/lat box over a northern UTM raster: its edges curve in UTM, so two corners
    would give the wrong box. The expected box is the pixel bounds of the outline densified
    far more finely here, reprojected point by point with pyproj."""
    transform = Affine(30.0, 0.0, 300000.0, 0.0, -30.0, 6800000.0)  # 360 km a side, ~60 N
    width = height = 12000
    lon0, lat0, lon1, lat1 = 13.0, 59.6, 17.5, 60.6
    ll = frame([shapely.box(lon0, lat0, lon1, lat1)], crs="EPSG:4326")
    ps = read_prompts(write(ll, tmp_path / "box.geojson"), CRS, transform, width, height)
    box = ps.objects[0].box

    to_utm = pyproj.Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    t = np.linspace(0, 1, 2001)
    lons = np.concatenate([lon0 + (lon1 - lon0) * t, np.full_like(t, lon1),
                           lon1 - (lon1 - lon0) * t, np.full_like(t, lon0)])
    lats = np.concatenate([np.full_like(t, lat0), lat0 + (lat1 - lat0) * t,
                           np.full_like(t, lat1), lat1 - (lat1 - lat0) * t])
    xs, ys = to_utm.transform(lons, lats)
    cols, rows = (xs - 300000.0) / 30.0, (6800000.0 - ys) / 30.0
    expected = np.array([cols.min(), rows.min(), cols.max(), rows.max()])
    assert np.abs(box - expected).max() < 0.5  # pixels

    (cx0, cx1), (cy0, cy1) = to_utm.transform([lon0, lon1], [lat0, lat1])  # two corners
    two_corners = np.array([(cx0 - 300000) / 30, (6800000 - cy1) / 30,
                            (cx1 - 300000) / 30, (6800000 - cy0) / 30])
    assert np.abs(two_corners - expected).max() > 20  # the case really needs the outline


def test_mixed_points_and_boxes(tmp_path):
    x0, y0 = world(10, 20)
    x1, y1 = world(30, 10)
    geoms = [shapely.Point(world(5.5, 5.5)), shapely.box(x0, y0, x1, y1)]
    ps = read(write(frame(geoms, object=[7, 7]), tmp_path / "p.geojson"))
    assert [o.kind for o in ps.objects] == ["point", "box"]  # polygons are never grouped


# --------------------------------------------------------------------------- bad input
def assert_one_line(excinfo, *words: str) -> None:
    message = excinfo.value.message
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_zero_area_polygon_inside_is_named_as_such(tmp_path):
    (xa, ya), (xb, _) = world(100, 200), world(300, 200)
    flat = shapely.Polygon([(xa, ya), (xb, ya), (xa, ya)])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(write(frame([flat]), tmp_path / "p.geojson"))
    assert_one_line(excinfo, "feature 1", "zero area")
    assert "outside" not in excinfo.value.message


def test_a_csv_is_not_a_prompts_file(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y,label\n500010,4999990,1\n")
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path)
    assert_one_line(excinfo, "no geometries", "CSV")


def test_several_layers_need_a_layer_name(tmp_path):
    path = tmp_path / "p.gpkg"
    frame([shapely.Point(world(5.5, 5.5))]).to_file(path, layer="clicks", engine="pyogrio")
    frame([shapely.Point(world(9.5, 9.5))]).to_file(path, layer="other", engine="pyogrio")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pyogrio warning before the one-line error
        with pytest.raises(GeofloodsamError) as excinfo:
            read(path)
    assert_one_line(excinfo, "2 layers", "clicks, other", "--prompts-layer")
    ps = read(path, layer="other")
    assert np.allclose(ps.objects[0].points, [(9.5, 9.5)])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path, layer="nope")
    assert_one_line(excinfo, "no layer 'nope'", "clicks, other")


def test_prompts_in_the_wrong_crs_warn_nothing_before_the_error(tmp_path):
    lonlat = frame([shapely.Point(world(5.5, 5.5))]).set_crs("EPSG:4326", allow_override=True)
    path = write(lonlat, tmp_path / "p.geojson")  # UTM metres labelled as degrees
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(GeofloodsamError) as excinfo:
            read(path)
    assert_one_line(excinfo, "inside the raster")


def test_missing_file(tmp_path):
    with pytest.raises(GeofloodsamError) as excinfo:
        read(tmp_path / "nope.geojson")
    assert_one_line(excinfo, "not found")


def test_unreadable_file(tmp_path):
    path = tmp_path / "bad.geojson"
    path.write_text("this is { not json")
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path)
    assert_one_line(excinfo, "cannot read prompts file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path)
    assert_one_line(excinfo, "has no features")


def test_file_without_crs(tmp_path):
    gdf = frame([shapely.Point(world(5.5, 5.5))], crs=None)
    path = write(gdf, tmp_path / "p.shp")
    assert not path.with_suffix(".prj").exists()
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path)
    assert_one_line(excinfo, "has no CRS", "--prompts-crs EPSG:XXXX")
    ps = read(path, prompts_crs=CRS)  # the fix works
    assert np.allclose(ps.objects[0].points, [(5.5, 5.5)])


def test_prompts_crs_overrides_and_is_checked(tmp_path, points_frame):
    lonlat = points_frame.to_crs("EPSG:4326").set_crs(None, allow_override=True)
    path = write(lonlat, tmp_path / "p.shp")
    assert read(path, prompts_crs="EPSG:4326").source_crs == "EPSG:4326"
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path, prompts_crs="EPSG:999999")
    assert_one_line(excinfo, "unknown --prompts-crs")


def test_degrees_are_never_taken_as_pixels(tmp_path):
    """Lon/lat points declared in the raster CRS land far outside it: an error, not pixels."""
    gdf = frame([shapely.Point(15.5, 45.2)], crs=None)
    path = write(gdf, tmp_path / "p.shp")
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path, prompts_crs=CRS)
    assert_one_line(excinfo, "none of the 1 prompt features", "CRS")


@pytest.mark.parametrize(
    ("geom", "name"),
    [(shapely.LineString([(500010, 4999990), (500100, 4999900)]), "LineString"),
     (shapely.MultiLineString([[(500010, 4999990), (500100, 4999900)]]), "MultiLineString"),
     (shapely.GeometryCollection([shapely.Point(500010, 4999990)]), "GeometryCollection")],
)
def test_unsupported_geometry(tmp_path, geom, name):
    gdf = frame([shapely.Point(world(5.5, 5.5)), geom])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(write(gdf, tmp_path / "p.geojson"))
    assert_one_line(excinfo, f"unsupported geometry {name}", "feature 2")


def test_feature_without_geometry(tmp_path):
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                           "coordinates": world(5.5, 5.5)}},
        {"type": "Feature", "properties": {}, "geometry": None},
    ]}))
    with pytest.raises(GeofloodsamError) as excinfo:
        read(path)
    assert_one_line(excinfo, "feature(s) 2 have no geometry")


@pytest.mark.parametrize("bad", [2, -1, "water", 0.5])
def test_bad_label(tmp_path, bad):
    gdf = frame([shapely.Point(world(5.5, 5.5))] * 2, label=[1, bad])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(write(gdf, tmp_path / "p.geojson"))
    assert_one_line(excinfo, "feature 2 has label", "1 (water) or 0 (not water)")


def test_negative_box(tmp_path):
    x0, y0 = world(10, 20)
    x1, y1 = world(30, 10)
    gdf = frame([shapely.box(x0, y0, x1, y1)], label=[0])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(write(gdf, tmp_path / "p.geojson"))
    assert_one_line(excinfo, "polygon with label 0")


def test_object_with_only_negative_points(tmp_path):
    gdf = frame([shapely.Point(world(5.5, 5.5)), shapely.Point(world(9.5, 5.5))],
                label=[1, 0], object=[1, 2])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(write(gdf, tmp_path / "p.geojson"))
    assert_one_line(excinfo, "object 2", "only label-0 points")


def test_all_outside(tmp_path):
    gdf = frame([shapely.Point(world(-10, -10)), shapely.Point(world(W + 10, 5))])
    with pytest.raises(GeofloodsamError) as excinfo:
        read(write(gdf, tmp_path / "p.geojson"))
    assert_one_line(excinfo, "none of the 2 prompt features", "inside the raster")
