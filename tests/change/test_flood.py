"""``flood``: classes from two dates, alignment across grids, outputs, the bad inputs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geofloodsam.change import classes as cls
from geofloodsam.change.pipeline import flood
from geofloodsam.cli import main
from geofloodsam.datasets.sample_scenes import change_classes
from geofloodsam.evaluation.metrics import scores
from tests.change.conftest import CRS, read, water_of, write_naip, write_s2

FAST = {"method": "index", "quiet": True}


def swap(classes: np.ndarray) -> np.ndarray:
    """The classes with before and after exchanged (flood <-> receded)."""
    out = classes.copy()
    out[classes == cls.FLOOD] = cls.RECEDED
    out[classes == cls.RECEDED] = cls.FLOOD
    return out


def truth() -> np.ndarray:
    return change_classes(water_of("after").astype(np.uint8), water_of("before").astype(np.uint8))


# --------------------------------------------------------------------------- classes
def test_combine_and_swap_are_the_class_table():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([0, 1, 1, 0, 1], bool)
    valid = np.array([1, 1, 1, 1, 0], bool)
    out = cls.combine(a, valid, b, np.ones(5, bool))
    assert out.tolist() == [cls.FLOOD, cls.PERMANENT, cls.RECEDED, cls.DRY, cls.NODATA]
    assert swap(out).tolist() == [cls.RECEDED, cls.PERMANENT, cls.FLOOD, cls.DRY, cls.NODATA]
    assert (cls.combine(b, valid, a, np.ones(5, bool)) == swap(out)).all()


# --------------------------------------------------------------------------- the pipeline
def test_pair_gives_flood_permanent_and_receded(tmp_path, s2_pair):
    after, before = s2_pair
    res = flood(after, before, outdir=tmp_path / "out", save_water=True, **FAST)
    got, want = read(res.classes_path), truth()
    for value in (cls.FLOOD, cls.PERMANENT, cls.RECEDED):
        assert scores(got == value, want == value)["iou"] > 0.95, value
    rec = json.loads(res.run_path.read_text())
    assert rec["command"] == "flood" and rec["change"]["used"] == "water"
    assert rec["after"]["sensor"]["sensor"] == rec["before"]["sensor"]["sensor"] == "s2"
    assert rec["after"]["method"]["method"] == rec["before"]["method"]["method"] == "index"
    assert rec["alignment"]["same_grid"] is True
    for name, value in (("flood", 1), ("permanent_water", 2), ("receded", 3), ("dry", 0)):
        assert rec["classes"][name]["pixels"] == int((got == value).sum())
        assert rec["classes"][name]["area_m2"] == pytest.approx(100.0 * (got == value).sum(),
                                                                rel=1e-3)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"after_change{s}" for s in (".tif", ".qml", ".gpkg", "_run.json")]
        + ["after_water_after.tif", "after_water_before.tif"]
    )
    a, b = read(res.water_paths["after"]), read(res.water_paths["before"])
    assert (cls.combine(a == 1, a != 255, b == 1, b != 255) == got).all()


def test_class_cog_has_its_colours_and_style(tmp_path, s2_pair):
    res = flood(*s2_pair, outdir=tmp_path, **FAST)
    with rasterio.open(res.classes_path) as ds:
        assert ds.nodata == 255 and ds.dtypes[0] == "uint8"
        assert ds.colormap(1)[1][:3] == (255, 85, 0) and ds.colormap(1)[2][:3] == (30, 120, 255)
        assert ds.colormap(1)[3][:3] == (255, 220, 0)
    qml = res.style_path.read_text()
    assert 'label="flood"' in qml and 'alpha="0"' in qml and 'label="receded"' in qml


def test_class_polygons_are_three_styled_layers_of_a_gpkg_1_2(tmp_path, s2_pair):
    import pyogrio

    res = flood(*s2_pair, outdir=tmp_path, **FAST)
    layers = [name for name, _ in pyogrio.list_layers(res.gpkg_path)]
    assert layers[:3] == ["flood", "permanent_water", "receded"]
    with sqlite3.connect(res.gpkg_path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 10200
        styles = dict(con.execute(
            "SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault = 1"
        ).fetchall())
    con.close()
    assert set(styles) == {"flood", "permanent_water", "receded"}
    assert "255,85,0" in styles["flood"] and "255,220,0" in styles["receded"]
    import geopandas as gpd

    frame = gpd.read_file(res.gpkg_path, layer="flood")
    assert frame.area_m2.sum() == pytest.approx(res.area_m2("flood"), rel=1e-6)


def test_a_scene_against_itself_has_no_flood_and_no_receded(tmp_path, s2_pair):
    after, _ = s2_pair
    res = flood(after, after, outdir=tmp_path, **FAST)
    got = read(res.classes_path)
    assert not np.isin(got, (cls.FLOOD, cls.RECEDED)).any()
    counts = res.record["classes"]
    assert counts["flood"]["pixels"] == counts["receded"]["pixels"] == 0


def test_swapping_the_dates_swaps_flood_and_receded(tmp_path, s2_pair):
    after, before = s2_pair
    one = read(flood(after, before, outdir=tmp_path / "a", **FAST).classes_path)
    two = read(flood(before, after, outdir=tmp_path / "b", **FAST).classes_path)
    assert (swap(one) == two).all()


def _reproject(src: Path, dst: Path, crs: str) -> Path:
    """The raster in another CRS and resolution (the 'two CRSs' fixture)."""
    with rasterio.open(src) as ds:
        transform, width, height = calculate_default_transform(
            ds.crs, crs, ds.width, ds.height, *ds.bounds, resolution=0.00012
        )
        profile = ds.profile | {"crs": crs, "transform": transform, "width": width,
                                "height": height}
        with rasterio.open(dst, "w", **profile) as out:
            for band in range(1, ds.count + 1):
                reproject(rasterio.band(ds, band), rasterio.band(out, band),
                          resampling=Resampling.nearest)
    return dst


def test_before_in_another_crs_is_warped_onto_after(tmp_path, s2_pair):
    after, before = s2_pair
    other = _reproject(before, tmp_path / "before_4326.tif", "EPSG:4326")
    res = flood(after, other, outdir=tmp_path / "out", **FAST)
    got, want = read(res.classes_path), truth()
    assert res.record["alignment"]["same_grid"] is False
    assert res.record["alignment"]["crs"] == "EPSG:4326"
    with rasterio.open(res.classes_path) as ds:
        assert ds.crs == CRS and ds.shape == want.shape
    ok = got != cls.NODATA
    assert ok.mean() > 0.95  # the reprojected footprint's corners fall outside
    for value in (cls.FLOOD, cls.PERMANENT, cls.RECEDED):
        assert scores(got == value, want == value, ok)["iou"] > 0.9, value


def test_outside_the_overlap_is_nodata(tmp_path, s2_pair):
    after, _ = s2_pair
    shifted = rasterio.transform.from_origin(501000, 4000000, 10, 10)  # 100 px east
    before = write_s2(tmp_path / "east.tif", water_of("before"), 5, transform=shifted)
    got = read(flood(after, before, outdir=tmp_path / "out", **FAST).classes_path)
    assert (got[:, :100] == cls.NODATA).all() and (got[:, 100:] != cls.NODATA).all()


# --------------------------------------------------------------------------- reference water
def test_reference_raster_of_percentages(tmp_path, s2_pair):
    after, _ = s2_pair
    occurrence = np.where(water_of("before"), 90, 10).astype(np.uint8)
    ref = tmp_path / "occurrence.tif"
    with rasterio.open(ref, "w", driver="GTiff", width=200, height=200, count=1, dtype="uint8",
                       crs=CRS, transform=rasterio.transform.from_origin(500000, 4000000, 10,
                                                                         10)) as ds:
        ds.write(occurrence, 1)
    res = flood(after, reference_water=ref, reference_min=50, outdir=tmp_path / "out", **FAST)
    got, want = read(res.classes_path), truth()
    assert scores(got == cls.FLOOD, want == cls.FLOOD)["iou"] > 0.95
    assert res.record["before_source"] == "reference" and "before" not in res.record


def test_reference_polygons_in_another_crs(tmp_path, s2_pair):
    import geopandas as gpd
    import shapely

    after, _ = s2_pair
    lake = shapely.Point(500000 + 805, 4000000 - 705).buffer(400)  # the lake, in metres
    frame = gpd.GeoDataFrame(geometry=[lake], crs=CRS).to_crs("EPSG:4326")
    ref = tmp_path / "lakes.gpkg"
    frame.to_file(ref)
    res = flood(after, reference_water=ref, outdir=tmp_path / "out", **FAST)
    got = read(res.classes_path)
    want = change_classes(water_of("after").astype(np.uint8), _disk().astype(np.uint8))
    assert scores(got == cls.FLOOD, want == cls.FLOOD)["iou"] > 0.95
    assert scores(got == cls.PERMANENT, want == cls.PERMANENT)["iou"] > 0.95
    assert res.record["alignment"]["kind"] == "polygons"


def _disk() -> np.ndarray:
    yy, xx = np.mgrid[:200, :200]
    return (yy + 0.5 - 70.5) ** 2 + (xx + 0.5 - 80.5) ** 2 < 40**2


# --------------------------------------------------------------------------- Sentinel-1
def test_s1_pair_uses_the_log_ratio_when_it_is_bimodal(tmp_path, s1_pair):
    after, before = s1_pair
    res = flood(after, before, outdir=tmp_path / "a", **FAST)
    change = res.record["change"]
    assert change["used"] == "log-ratio" and "bimodal" in change["why"]
    assert change["log_ratio"]["source"] == "tiles"
    got, want = read(res.classes_path), truth()
    assert scores(got == cls.FLOOD, want == cls.FLOOD)["iou"] > 0.85
    same = flood(after, after, outdir=tmp_path / "b", **FAST)
    assert same.record["change"]["used"] == "water"  # no darkened population: masks compared
    assert not np.isin(read(same.classes_path), (cls.FLOOD, cls.RECEDED)).any()
    forced = flood(after, after, outdir=tmp_path / "c", change="log-ratio", **FAST)
    assert forced.record["change"]["log_ratio"]["source"] == "fixed"
    assert not np.isin(read(forced.classes_path), (cls.FLOOD, cls.RECEDED)).any()
    swapped = flood(before, after, outdir=tmp_path / "d", change="log-ratio", **FAST)
    again = flood(after, before, outdir=tmp_path / "e", change="log-ratio", **FAST)
    t1 = swapped.record["change"]["log_ratio"]["threshold_db"]
    assert t1 == again.record["change"]["log_ratio"]["threshold_db"]  # |ratio|: one split
    assert (swap(read(again.classes_path)) == read(swapped.classes_path)).all()
    assert (read(again.classes_path) == cls.RECEDED).any()  # the pond that went


def test_water_change_is_used_when_asked(tmp_path, s1_pair):
    res = flood(*s1_pair, outdir=tmp_path, change="water", **FAST)
    assert res.record["change"]["used"] == "water"


# --------------------------------------------------------------------------- bad input
def _cli(args: list[str]):
    return CliRunner().invoke(main, ["flood", *map(str, args)])


def _fails(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [x for x in result.output.strip().splitlines() if x.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]


def test_scenes_that_do_not_overlap(tmp_path, s2_pair):
    after, _ = s2_pair
    far = write_s2(tmp_path / "far.tif", water_of("before"),
                   transform=rasterio.transform.from_origin(600000, 4000000, 10, 10))
    out = tmp_path / "out"
    _fails(_cli([after, "--before", far, "-o", out, "--method", "index"]), "does not overlap")
    assert not out.exists()


def test_radar_against_optical_is_an_error_unless_allowed(tmp_path, s2_pair, s1_pair):
    out = tmp_path / "out"
    _fails(_cli([s1_pair[0], "--before", s2_pair[1], "-o", out, "--method", "index"]),
           "s1", "s2", "--allow-mixed-sensors")
    assert not out.exists()
    ok = _cli([s1_pair[0], "--before", s2_pair[1], "-o", out, "--method", "index",
               "--allow-mixed-sensors", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert "Warning" in ok.output


def test_two_optical_sensors_give_a_warning(tmp_path, s2_pair):
    naip = write_naip(tmp_path / "naip.tif", water_of("before"))
    result = _cli([s2_pair[0], "--before", naip, "-o", tmp_path / "out", "--method", "index",
                   "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Warning: AFTER is s2 and BEFORE is naip" in result.output
    rec = json.loads((tmp_path / "out" / "after_change_run.json").read_text())
    assert rec["sensors"]["warning"].startswith("Warning")


def test_reference_raster_without_crs(tmp_path, s2_pair):
    ref = tmp_path / "nocrs.tif"
    with rasterio.open(ref, "w", driver="GTiff", width=10, height=10, count=1,
                       dtype="uint8") as ds:
        ds.write(np.ones((1, 10, 10), np.uint8))
    out = tmp_path / "out"
    _fails(_cli([s2_pair[0], "--reference-water", ref, "-o", out, "--method", "index"]),
           "no CRS")
    assert not out.exists()


def test_reference_layer_without_polygons_in_the_scene(tmp_path, s2_pair):
    import geopandas as gpd
    import shapely

    ref = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4326").to_file(ref)
    out = tmp_path / "out"
    _fails(_cli([s2_pair[0], "--reference-water", ref, "-o", out, "--method", "index"]),
           "no water polygon")
    assert not out.exists()


@pytest.mark.parametrize("extra", [[], ["--before", "B", "--reference-water", "R"]])
def test_before_or_reference_exactly_one(tmp_path, s2_pair, extra):
    args = [s2_pair[0], "-o", tmp_path / "out", *[
        s2_pair[1] if x in ("B", "R") else x for x in extra]]
    _fails(_cli(args), "exactly one")


def test_log_ratio_needs_a_radar_pair(tmp_path, s2_pair):
    _fails(_cli([s2_pair[0], "--before", s2_pair[1], "-o", tmp_path / "out", "--method",
                 "index", "--change", "log-ratio"]), "Sentinel-1 pair")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tiny_sam_runs_both_dates_through_segment(tmp_path, tiny_model):
    """Prompted AFTER, promptless BEFORE: the same decoder, each date's own record."""
    from geofloodsam.datasets.sample_scenes import river_scene

    after = river_scene(tmp_path, 400, 300, stage="after")
    before = river_scene(tmp_path, 400, 300, stage="before")
    res = flood(after.image, before.image, outdir=tmp_path / "out", prompts=after.prompts_utm,
                sam_model=tiny_model, tile_size=256, overlap=64, quiet=True)
    rec = res.record
    assert rec["after"]["prompt_mode"] == "prompted"
    assert rec["before"]["prompt_mode"] == "promptless"
    assert rec["after"]["method"]["decoder"] == rec["before"]["method"]["decoder"]
    with rasterio.open(res.classes_path) as ds:
        assert ds.shape == (300, 400)
