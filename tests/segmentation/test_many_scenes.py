"""``segment`` on many scenes, in-process and on a Dask cluster: same outputs, clear errors.

The scenes are two overlapping crops of the riverside sample (the river runs through both),
the model is the tiny random SAM (``model="tiny"``: every worker builds the same one). Its
water probability is noise around 0.5, so a mask at threshold 0.5 changes if a single logit
does: a sharp test of "identical". The noise makes many polygons, so the scenes are small.
Tests that start a Dask cluster are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import Point, box

from geofloodsam.cli import main
from geofloodsam.errors import GeofloodsamError
from geofloodsam.geo.transforms import pixel_to_world
from geofloodsam.model.sam import Embedding
from geofloodsam.segmentation.pipeline import segment

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_tiles"
RIVERSIDE = SAMPLES / "riverside_rgb.tif"
#: crops of riverside_rgb (col, row, width, height): they overlap over columns 1600-1750
CROPS = {"west": (1350, 1450, 400, 320), "east": (1600, 1420, 400, 320)}
GRID = {"tile_size": 128, "overlap": 32}
#: promptless runs decode every tile: smaller tiles, more tasks
PROMPTLESS = {"tile_size": 64, "overlap": 16}
TINY = {"model": "tiny", "device": "cpu", "threads": 1, "quiet": True}


def crop(path: Path, window: Window) -> Path:
    """Write ``window`` of the riverside sample as its own GeoTIFF."""
    with rasterio.open(RIVERSIDE) as src:
        data = src.read(window=window)
        profile = {
            "driver": "GTiff", "width": window.width, "height": window.height, "count": 3,
            "dtype": "uint8", "crs": src.crs, "transform": window_transform(window, src.transform),
            "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
        }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    """The two crops, a far crop no prompt reaches, and a prompts file in EPSG:4326.

    Prompts (riverside pixels): river points in the west crop only, in the overlap, in the
    east crop only, a box over flooded land in the east crop, and a point outside every crop.
    """
    folder = tmp_path_factory.mktemp("scenes")
    out = {name: crop(folder / f"{name}.tif", Window(*w)) for name, w in CROPS.items()}
    out["far"] = crop(folder / "far.tif", Window(100, 100, 200, 160))
    out["west_small"] = crop(folder / "west_small.tif", Window(1350, 1450, 256, 224))
    out["east_small"] = crop(folder / "east_small.tif", Window(1650, 1420, 256, 224))
    with rasterio.open(SAMPLES / "riverside_rgb_truth.tif") as ds:
        truth, transform, crs = ds.read(1), ds.transform, ds.crs
    rows, cols = np.nonzero(truth == 1)

    def water_near(x: float, y: float) -> tuple[float, float]:
        k = int(np.argmin((cols - x) ** 2 + (rows - y) ** 2))
        return cols[k] + 0.5, rows[k] + 0.5

    pixels = [water_near(1450, 1600), water_near(1680, 1600), water_near(1900, 1560),
              (600.5, 600.5)]
    geoms = [Point(pixel_to_world(transform, x, y)) for x, y in pixels]
    (x0, x1), (y0, y1) = pixel_to_world(transform, [1800, 1950], [1600, 1700])
    geoms.append(box(x0, y1, x1, y0))
    frame = gpd.GeoDataFrame({"label": [1, 1, 1, 1, None]}, geometry=geoms, crs=crs)
    out["prompts"] = folder / "prompts.geojson"
    frame.to_crs("EPSG:4326").to_file(out["prompts"])
    return out


def outputs(result) -> tuple[bytes, gpd.GeoDataFrame]:
    """The mask file's bytes and the polygons of one scene's result (or its mask path)."""
    mask = Path(result) if isinstance(result, (str, Path)) else result.mask_path
    gpkg = mask.with_name(mask.name.replace("_mask.tif", "_flood.gpkg"))
    return mask.read_bytes(), gpd.read_file(gpkg, layer="flood")


def assert_same(a, b) -> None:
    """Bit-identical masks, equal polygons (geometry and attributes)."""
    mask_a, poly_a = outputs(a)
    mask_b, poly_b = outputs(b)
    assert mask_a == mask_b
    assert len(poly_a) == len(poly_b)
    assert list(poly_a.geometry.to_wkb()) == list(poly_b.geometry.to_wkb())
    assert poly_a.drop(columns="geometry").equals(poly_b.drop(columns="geometry"))


def listing(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


# --------------------------------------------------------------------------- in-process
@pytest.mark.slow
def test_many_scenes_match_one_scene_runs(scenes, tmp_path, capsys) -> None:
    """Each scene gets the features inside it, overlap included, and its own outputs."""
    pair = [scenes["west"], scenes["east"]]
    many = segment(pair, scenes["prompts"], tmp_path / "many", **GRID, **TINY)
    err = capsys.readouterr().err
    assert "1 of 5 prompt feature(s) lie outside every scene" in err
    assert [r.mask_path.name for r in many] == ["west_mask.tif", "east_mask.tif"]
    for result, scene in zip(many, pair, strict=True):
        one = segment(scene, scenes["prompts"], tmp_path / f"one_{scene.stem}", **GRID, **TINY)
        assert_same(result, one)
        assert result.record["prompts"] == one.record["prompts"]
        assert result.record["executor"]["kind"] == "in-process"
    west, east = (r.record["prompts"] for r in many)
    assert (west["features"] - west["outside"], east["features"] - east["outside"]) == (2, 3)
    assert outputs(many[0])[0] != outputs(many[1])[0]
    assert many[0].water_area_m2 > 0 and many[1].water_area_m2 > 0


def test_scene_without_prompts_is_skipped(scenes, tmp_path, capsys) -> None:
    listed = tmp_path / "scenes.txt"
    listed.write_text(f"{scenes['west']}\n# no prompt lies in the far crop\n{scenes['far']}\n")
    results = segment(listed, scenes["prompts"], tmp_path / "out", **GRID, **TINY)
    assert "far.tif: skipped, no outputs for it" in capsys.readouterr().err
    assert [r.mask_path.name for r in results] == ["west_mask.tif"]
    assert not any(name.startswith("far") for name in listing(tmp_path / "out"))


@pytest.mark.slow
def test_promptless_scene_list_through_the_cli(scenes, tmp_path) -> None:
    listed = tmp_path / "scenes.txt"
    listed.write_text(f"{scenes['west_small']}\n{scenes['far']}\n")
    out = tmp_path / "out"
    args = ["segment", str(listed), "-o", str(out), "--model", "tiny", "--device", "cpu",
            "--tile-size", "64", "--overlap", "16", "--threads", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summaries = [line for line in result.output.splitlines() if "tile(s) encoded" in line]
    assert [s.split(":")[0] for s in summaries] == ["west_small.tif", "far.tif"]
    for stem in ("west_small", "far"):
        assert {f"{stem}_mask.tif", f"{stem}_flood.gpkg", f"{stem}_run.json"} <= set(listing(out))
        record = json.loads((out / f"{stem}_run.json").read_text())
        assert record["prompts"]["mode"] == "promptless"
    one = segment(scenes["far"], None, tmp_path / "one", **PROMPTLESS, **TINY)
    assert (out / "far_mask.tif").read_bytes() == one.mask_path.read_bytes()


def test_a_revisit_without_the_kept_embedding_decodes_the_same(scenes, tiny_model) -> None:
    """A worker that lacks a revisited tile's embedding encodes it again, rounded as if kept."""
    import torch

    from geofloodsam.raster.scene import Scene, compute_stretch
    from geofloodsam.tiles.tasks import ChunkJob, Seed, TileTask
    from geofloodsam.tiles.work import RunEmbeddings, run_chunk

    seed = Seed(1, np.array([[40.5, 60.5], [90.5, 20.5]]), np.array([1, 0]), propagate=True)
    window = Window(64, 32, 128, 128)

    def job(revisit: bool) -> ChunkJob:
        return ChunkJob([TileTask(3, ("run", 0, 3), window, [seed], revisit=revisit)])

    with Scene.open(scenes["west"]) as scene:
        stretch = compute_stretch(scene)
        kept = RunEmbeddings(None)
        first = run_chunk(tiny_model, scene, stretch, job(False), kept)
        again = run_chunk(tiny_model, scene, stretch, job(True), RunEmbeddings(None))
        reused = run_chunk(tiny_model, scene, stretch, job(True), kept)
    assert [t.state for t in (*first.tiles, *again.tiles, *reused.tiles)] == [
        "new", "again", "kept"]
    np.testing.assert_array_equal(
        again.tiles[0].probs[0].full((128, 128)), reused.tiles[0].probs[0].full((128, 128))
    )
    np.testing.assert_array_equal(
        again.tiles[0].connected[0].full((128, 128)), reused.tiles[0].connected[0].full((128, 128))
    )
    cache = RunEmbeddings(None, max_bytes=5000)  # a worker's cache: 2 of 2048 bytes fit
    for key in "abc":
        cache.put(key, Embedding(torch.zeros(4, 16, 16), (64, 64), (1024, 1024)))
    assert "a" not in cache and cache.get("a") is None and cache.get("c") is not None


def no_model(*args, **kwargs):
    raise AssertionError("the model was loaded")


@pytest.mark.parametrize(
    "case, expected",
    [
        ("band layouts", "different band layouts"),
        ("unreachable scheduler", "cannot reach the Dask scheduler at tcp://127.0.0.1:"),
        ("both scheduler and workers", "not both"),
        ("threads", "--threads must be at least 1"),
    ],
)
def test_bad_runs_are_one_line_errors_and_leave_nothing(
    scenes, tmp_path, monkeypatch, case, expected, free_port
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr("geofloodsam.model.sam.load_model", no_model)
    monkeypatch.setattr("geofloodsam.segmentation.distributed.CONNECT_TIMEOUT", 1.0)
    out = tmp_path / "out"
    pair = [str(scenes["west"]), str(scenes["east"])]
    args = {
        "band layouts": [str(RIVERSIDE), str(SAMPLES / "delta_4band.tif")],
        "unreachable scheduler": [*pair, "--scheduler", f"tcp://127.0.0.1:{free_port()}"],
        "both scheduler and workers": [*pair, "--scheduler", "tcp://127.0.0.1:1", "--workers",
                                       "2"],
        "threads": [*pair, "--threads", "0"],
    }[case]
    result = CliRunner().invoke(main, ["segment", *args, "-o", str(out), "--quiet"])
    assert result.exit_code != 0
    assert not isinstance(result.exception, AssertionError), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expected in lines[0], lines[0]
    assert listing(out) == []


def test_a_loaded_model_cannot_go_to_workers(scenes, tiny_model) -> None:
    with pytest.raises(GeofloodsamError, match="cannot be sent to Dask workers"):
        segment(scenes["west"], sam_model=tiny_model, workers=2, quiet=True)


# --------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 worker processes (1 task thread each), shared by the slow tests."""
    pytest.importorskip("distributed")
    from geofloodsam.segmentation.distributed import open_session

    with open_session(workers=2) as session:
        yield session


@pytest.fixture(scope="module")
def in_process(scenes, tmp_path_factory):
    """The reference: both scenes, prompted and promptless, run in-process."""
    out = tmp_path_factory.mktemp("reference")
    pair, small = [scenes["west"], scenes["east"]], [scenes["west_small"], scenes["east_small"]]
    return {
        "prompted": segment(pair, scenes["prompts"], out / "prompted", **GRID, **TINY),
        "promptless": segment(small, None, out / "promptless", **PROMPTLESS, **TINY),
    }


@pytest.mark.slow
def test_cluster_run_matches_in_process(scenes, tmp_path, cluster, in_process) -> None:
    pair, small = [scenes["west"], scenes["east"]], [scenes["west_small"], scenes["east_small"]]
    address = cluster.client.scheduler.address
    runs = {
        "prompted": segment(pair, scenes["prompts"], tmp_path / "prompted", scheduler=address,
                            **GRID, **TINY),
        "promptless": segment(small, None, tmp_path / "promptless", scheduler=address,
                              **PROMPTLESS, **TINY),
    }
    for mode, results in runs.items():
        for result, reference in zip(results, in_process[mode], strict=True):
            assert_same(result, reference)
            executor = result.record["executor"]
            assert executor["kind"] == "dask" and executor["scheduler"] == address
            assert executor["workers"] == 2 and executor["torch_threads"] == [1]
            assert executor["tile_tasks"]["count"] > 0 and executor["tile_tasks"]["max_s"] > 0
            assert sum(w["tasks"] for w in executor["by_worker"].values()) == (
                executor["tile_tasks"]["count"])
    workers = set()
    for result in runs["promptless"]:
        workers |= set(result.record["executor"]["by_worker"])
    assert len(workers) == 2, "both workers computed tiles"


@pytest.mark.slow
def test_cli_on_a_local_cluster_matches_in_process(scenes, tmp_path, in_process) -> None:
    out = tmp_path / "out"
    args = ["segment", str(scenes["west"]), str(scenes["east"]), "-p", str(scenes["prompts"]),
            "-o", str(out), "--model", "tiny", "--device", "cpu", "--tile-size", "128",
            "--overlap", "32", "--threads", "1", "--workers", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for reference in in_process["prompted"]:
        stem = reference.mask_path.name.removesuffix("_mask.tif")
        assert_same(out / f"{stem}_mask.tif", reference)
        record = json.loads((out / f"{stem}_run.json").read_text())
        assert record["executor"]["scheduler"] == "local" and record["executor"]["workers"] == 2
        assert record["parameters"]["workers"] == 2


@pytest.mark.slow
def test_killed_worker_does_not_lose_the_run(scenes, tmp_path, cluster, in_process,
                                             monkeypatch) -> None:
    """SIGKILL a worker mid-run: its tiles are recomputed and the outputs are unchanged."""
    from geofloodsam.segmentation.distributed import DaskExecutor

    killed: list[int] = []
    seen: list[int] = []
    original = DaskExecutor._result

    def kill_one(fut, i):
        outcome = original(fut, i)
        seen.append(i)
        if not killed and len(seen) == 4:
            killed.append(outcome.pid)
            os.kill(outcome.pid, signal.SIGKILL)
        return outcome

    monkeypatch.setattr(DaskExecutor, "_result", staticmethod(kill_one))
    small = [scenes["west_small"], scenes["east_small"]]
    results = segment(small, None, tmp_path / "out", scheduler=cluster.client.scheduler.address,
                      **PROMPTLESS, **TINY)
    assert killed, "a worker was killed during the run"
    for result, reference in zip(results, in_process["promptless"], strict=True):
        assert_same(result, reference)
    cluster.client.wait_for_workers(2, timeout=120)  # the nanny restarts it


@pytest.mark.slow
@pytest.mark.parametrize("lacks", ["package", "weights"])
def test_worker_lacking_the_package_or_weights(
    scenes, tmp_path, mobile_sam_path, lacks, spec_cluster
) -> None:
    """Through the CLI: one line naming the worker and what it lacks; nothing written."""
    pytest.importorskip("distributed")
    if lacks == "package":
        block = tmp_path / "block_geofloodsam.py"
        block.write_text("import sys\nsys.modules['geofloodsam'] = None\n")
        bad, expected = {"preload": [str(block)]}, r"cannot import geofloodsam"
    else:
        empty = tmp_path / "empty"
        empty.mkdir()
        env = {"GEOFLOODSAM_WEIGHTS_DIR": str(empty), "GEOFLOODSAM_HOME": str(empty)}
        bad, expected = {"env": env}, r"lacks the weights: checkpoint mobile_sam.pt for vit_t"
    out = tmp_path / "out"
    with spec_cluster(bad) as cluster:
        result = CliRunner().invoke(main, [
            "segment", str(scenes["west"]), "-p", str(scenes["prompts"]), "-o", str(out),
            "--model", "vit_t", "--device", "cpu", "--quiet",
            "--scheduler", cluster.scheduler_address,
        ])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].startswith("Error: worker "), result.output
    assert "(name bad)" in errors[0] and expected in errors[0], errors[0]
    assert result.output.strip().endswith(errors[0])  # nothing after the error
    assert listing(out) == []
