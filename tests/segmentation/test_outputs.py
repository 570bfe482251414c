"""The outputs of a scene (:mod:`geofloodsam.segmentation.outputs`): the COGs, the GeoPackage
and ``run.json`` of an *oracle* run, whose right answer is known exactly, and never losing the
previous outputs when a run fails while writing.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from oracle_scenes import (
    OUTPUT_SUFFIXES,
    UTM,
    OracleModel,
    dark_scene,
    ellipse,
    leftovers,
    previous_outputs,
    read_mask,
    write_points,
    write_raster,
)

from geofloodsam.cli import main
from geofloodsam.errors import GeofloodsamError
from geofloodsam.segmentation.pipeline import segment


def test_outputs_grid_formats_and_run_record(tmp_path) -> None:
    w, h = 600, 520
    water = ellipse(w, h, 300, 260, 200, 150)
    scene = write_raster(tmp_path / "scene.tif", dark_scene(w, h, water))
    prompts = write_points(tmp_path / "p.geojson", [(300.5, 260.5), (5.5, 5.5)],
                           objects=[7, None], labels=[1, 1])
    out = tmp_path / "out"
    res = segment(scene, prompts, out, tile_size=256, overlap=64, save_prob=True,
                  sam_model=OracleModel(), quiet=True)
    assert leftovers(out) == sorted(["scene" + s for s in OUTPUT_SUFFIXES] + ["scene_prob.tif"])
    with rasterio.open(scene) as src, rasterio.open(res.mask_path) as m, \
            rasterio.open(res.prob_path) as p:
        for ds in (m, p):
            assert (ds.crs, ds.transform, ds.width, ds.height) == (
                src.crs, src.transform, src.width, src.height)
            assert ds.dtypes == ("uint8",) and ds.profile["tiled"]
            assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert ds.compression.name.lower() == "deflate" and ds.overviews(1) == [2]
        assert m.nodata == 255
        mask, prob = m.read(1), p.read(1)
    assert set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(mask == 1, water)
    assert (prob[water] > 250).all() and (prob[~water] < 5).all()
    frame = gpd.read_file(res.gpkg_path, layer="flood")
    assert frame.crs == UTM and list(frame.columns[:4]) == ["area_m2", "object_id",
                                                            "prompt_type", "model"]
    assert len(frame) == 1 and frame["object_id"][0] == 1 and frame["prompt_type"][0] == "point"
    assert frame["model"][0] == "oracle:pretrained"
    record = json.loads(res.run_path.read_text())
    assert record["water"]["pixels"] == int(water.sum())
    assert record["water"]["area_m2"] == pytest.approx(water.sum() * 100.0, rel=2e-3)
    assert frame["area_m2"][0] == pytest.approx(record["water"]["area_m2"], rel=1e-6)
    assert record["tiles"]["encoded"] == res.tiles_encoded > 0
    assert record["stretch"]["method"].startswith("none")
    assert record["parameters"]["tile_size"] == 256 and record["model"]["model"] == "oracle"
    assert {"encoder_s", "other_s", "total_s"} <= set(record["timings"])
    assert record["prompts"]["objects"] == 2  # the point at (5, 5) is dry: an object, no water


def test_water_area_is_the_same_in_run_json_and_evaluate_raster(tmp_path, big_lake) -> None:
    """One area convention: the mask scored against itself reports run.json's water area."""
    from geofloodsam.evaluation.raster import evaluate_raster

    scene, _ = big_lake
    prompts = write_points(tmp_path / "p.geojson", [(330.5, 290.5)])
    res = segment(scene, prompts, tmp_path / "out", tile_size=192, overlap=48,
                  sam_model=OracleModel(), quiet=True)
    score = evaluate_raster(res.mask_path, res.mask_path, (1,), progress=False)
    assert res.water_area_m2 > 0
    assert score.pred_water_m2 == pytest.approx(res.water_area_m2, rel=1e-9)


def test_empty_result_is_a_valid_empty_layer(tmp_path) -> None:
    w, h = 300, 200
    scene = write_raster(tmp_path / "dry.tif", dark_scene(w, h, np.zeros((h, w), bool)))
    prompts = write_points(tmp_path / "p.geojson", [(100.5, 100.5)])
    res = segment(scene, prompts, tmp_path / "out", tile_size=128, overlap=32,
                  sam_model=OracleModel(), quiet=True)
    assert (read_mask(res.mask_path) == 0).all()
    frame = gpd.read_file(res.gpkg_path, layer="flood")
    assert len(frame) == 0 and frame.crs == UTM
    assert res.water_area_m2 == 0


# --------------------------------------------------------------------------- never lose results
def test_failure_leaves_no_output(tmp_path, big_lake, monkeypatch) -> None:
    scene, _ = big_lake
    prompts = write_points(tmp_path / "p.geojson", [(330.5, 290.5)])
    out = tmp_path / "out"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("geofloodsam.segmentation.outputs.write_gpkg", broken)
    with pytest.raises(OSError, match="disk full"):
        segment(scene, prompts, out, tile_size=256, overlap=64, sam_model=OracleModel(),
                quiet=True)
    assert leftovers(out) == []


def test_a_last_rename_failing_keeps_the_previous_outputs(tmp_path, big_lake, monkeypatch) -> None:
    scene, _ = big_lake
    prompts = write_points(tmp_path / "p.geojson", [(330.5, 290.5)])
    out = tmp_path / "out"
    stem = Path(scene).stem
    old = previous_outputs(out, stem)
    from geofloodsam.segmentation import outputs

    real = outputs.write_gpkg

    def write_then_block(frame, path, *a, **k):  # something appears at run.json mid-run
        real(frame, path, *a, **k)
        (out / f"{stem}_run.json").mkdir()

    monkeypatch.setattr(outputs, "write_gpkg", write_then_block)
    with pytest.raises(GeofloodsamError, match="in the way"):
        segment(scene, prompts, out, tile_size=256, overlap=64, sam_model=OracleModel(),
                quiet=True)
    assert {n: (out / n).read_bytes() for n in old} == old
    assert leftovers(out) == sorted([*old, f"{stem}_run.json"])


def _tiny_cli(scene: Path, out: Path, *extra: str) -> list[str]:
    return ["segment", str(scene), "-o", str(out), "--model", "tiny", "--device", "cpu",
            "--tile-size", "256", "--overlap", "64", "--quiet", *extra]


def test_a_full_disk_is_one_line_and_keeps_the_previous_outputs(tmp_path, monkeypatch) -> None:
    import errno

    w, h = 300, 200
    scene = write_raster(tmp_path / "s.tif", dark_scene(w, h, ellipse(w, h, 150, 100, 80, 60)))
    out = tmp_path / "out"
    old = previous_outputs(out, "s")

    def full(frame, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("geofloodsam.segmentation.outputs.write_gpkg", full)
    result = CliRunner().invoke(main, _tiny_cli(scene, out))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "No space left on device" in lines[0] and "free some space" in lines[0]
    assert {n: (out / n).read_bytes() for n in old} == old
    assert leftovers(out) == sorted(old)


@pytest.mark.parametrize(("dry", "expected"), [
    ({1}, "Warning: object 12 was clicked on what SAM and the water index both call dry land"),
    (set(range(14)), "Warning: objects 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 and 4 more were "
                     "clicked on what SAM and the water index both call dry land"),
])
def test_clicks_on_dry_land_are_one_warning_line(capsys, dry, expected) -> None:
    """One object is named; many are one line (the first ten, and how many more)."""
    from types import SimpleNamespace

    from geofloodsam.segmentation.outputs import _warn_objects
    from geofloodsam.tiles.engine import EngineStats

    plan = SimpleNamespace(objects={k: SimpleNamespace(object_id=11 + k) for k in range(14)},
                           config=SimpleNamespace(max_object_tiles=256))
    stats = EngineStats()
    stats.dry_objects.update(dry)
    _warn_objects(plan, stats)
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1
