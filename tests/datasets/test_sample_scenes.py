"""samples: deterministic synthetic scenes, their exact truth and their prompt files."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window
from scipy import ndimage

from geofloodsam.cli import main
from geofloodsam.datasets import sample_scenes as samples
from geofloodsam.files.hashing import sha256_file
from geofloodsam.raster.scene import Scene, compute_stretch
from geofloodsam.vector.prompts import read_prompts

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_tiles"
STEMS = {"riverside_rgb": None, "delta_4band": "1,2,3"}  # stem -> --bands


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLE_DIR.iterdir() if p.suffix in (".tif", ".geojson"))


def read_truth(stem: str) -> np.ndarray:
    with rasterio.open(SAMPLE_DIR / f"{stem}_truth.tif") as ds:
        return ds.read(1)


# --------------------------------------------------------------------------- the files
@pytest.mark.slow
def test_make_samples_regenerates_the_committed_files(tmp_path):
    """Regenerated files carry the same pixels, grids and prompts as the committed ones.

    Pixels are compared rather than file bytes, so that another GDAL/zlib/libjpeg build
    (which may encode the same pixels differently) does not fail the test; JPEG-compressed
    scenes may differ by at most 2 grey levels between codec builds.
    """
    result = CliRunner().invoke(main, ["make-samples", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    committed = sample_files()
    assert [p.name for p in committed] == sorted(p.name for p in tmp_path.iterdir())
    for path in committed:
        fresh = tmp_path / path.name
        if path.suffix == ".geojson":
            a, b = gpd.read_file(path), gpd.read_file(fresh)
            assert a.crs == b.crs and list(a.columns) == list(b.columns), path.name
            assert all(x.equals_exact(y, 1e-9) for x, y in zip(a.geometry, b.geometry, strict=True))
            continue
        with rasterio.open(path) as old, rasterio.open(fresh) as new:
            assert (old.crs, old.transform, old.shape, old.count, old.dtypes, old.nodata) == (
                new.crs,
                new.transform,
                new.shape,
                new.count,
                new.dtypes,
                new.nodata,
            ), path.name
            lossy = old.compression and old.compression.value == "JPEG"
            diff = np.abs(old.read().astype(np.int64) - new.read().astype(np.int64)).max()
            assert diff <= (2 if lossy else 0), (path.name, diff)


def test_folder_stays_small():
    sizes = {p.name: p.stat().st_size for p in sample_files()}
    assert len(sizes) == 9 * len(STEMS)  # after and before: scene, truth, 2 prompts; classes
    assert max(sizes.values()) < 4e6 and sum(sizes.values()) < 12e6


@pytest.mark.parametrize("stem", STEMS)
def test_truth_matches_the_scene_grid(stem):
    with (
        rasterio.open(SAMPLE_DIR / f"{stem}.tif") as img,
        rasterio.open(SAMPLE_DIR / f"{stem}_truth.tif") as truth,
    ):
        assert truth.crs == img.crs and truth.transform == img.transform
        assert (truth.width, truth.height) == (img.width, img.height)
        assert truth.dtypes == ("uint8",) and truth.nodata == 255
        labels = truth.read(1)
        image_valid = (img.read_masks() != 0).all(axis=0)
        image = img.read()
    assert set(np.unique(labels)) <= {0, 1, 255}
    assert np.array_equal(labels == 255, ~image_valid)  # nodata in truth == nodata in image
    assert (image[:, ~image_valid] == 0).all()
    water = (labels == 1).sum() / (labels != 255).sum()
    assert 0.1 < water < 0.5


def test_scene_kinds():
    with rasterio.open(SAMPLE_DIR / "riverside_rgb.tif") as ds:
        assert (ds.count, ds.dtypes[0], ds.crs.to_epsg(), ds.res) == (3, "uint8", 32633, (2, 2))
        assert (ds.width, ds.height) == (3000, 2400) and ds.profile["tiled"]
    with rasterio.open(SAMPLE_DIR / "delta_4band.tif") as ds:
        assert (ds.count, ds.dtypes[0], ds.crs.to_epsg(), ds.res) == (4, "uint16", 32617, (10, 10))
        assert (ds.width, ds.height) == (2600, 2000) and ds.nodata == 0
        assert ds.overviews(1) == [4, 16]
        assert ds.read(4, window=Window(1200, 900, 200, 200)).max() <= 10000


@pytest.mark.parametrize("stem", STEMS)
def test_a_lake_spans_several_tiles(stem):
    truth = read_truth(stem)
    labels, _ = ndimage.label(truth == 1)
    biggest = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    cols = np.flatnonzero(biggest.any(axis=0))
    assert cols[-1] - cols[0] + 1 >= 1500


@pytest.mark.parametrize("stem", STEMS)
def test_prompt_files_agree_and_sit_on_water(stem):
    truth = read_truth(stem)
    with Scene.open(SAMPLE_DIR / f"{stem}.tif", STEMS[stem]) as scene:
        grid = (scene.crs, scene.transform, scene.width, scene.height)
    utm = read_prompts(SAMPLE_DIR / f"{stem}_prompts_utm.geojson", *grid)
    ll = read_prompts(SAMPLE_DIR / f"{stem}_prompts_4326.geojson", *grid)
    assert ll.source_crs == "EPSG:4326" and utm.source_crs != "EPSG:4326"
    assert utm.n_outside == ll.n_outside == 0
    kinds = [o.kind for o in utm.objects]
    assert kinds.count("box") >= 1 and kinds.count("point") >= 3
    negatives = 0
    for a, b in zip(utm.objects, ll.objects, strict=True):
        assert (a.object_id, a.kind) == (b.object_id, b.kind)
        if a.kind == "box":
            assert np.abs(np.subtract(a.box, b.box)).max() < 1e-3
            x0, y0, x1, y1 = (int(v) for v in a.box)
            assert (truth[y0:y1, x0:x1] == 1).any()
            continue
        assert np.abs(a.points - b.points).max() < 1e-6
        assert a.labels.tolist() == b.labels.tolist()
        for (x, y), label in zip(a.points, a.labels, strict=True):
            assert truth[int(y), int(x)] == label
        negatives += int((a.labels == 0).sum())
        if len(a.points) > 1:  # a grouped object
            assert a.labels.tolist().count(1) >= 2
    assert negatives >= 1


# --------------------------------------------------------------------------- generators
def test_lake_scene(tmp_path):
    files = samples.lake_scene(tmp_path, size=600)
    with rasterio.open(files.image) as img, rasterio.open(files.truth) as tr:
        assert (img.width, img.height, img.count) == (600, 600, 3)
        assert tr.transform == img.transform == files.transform
        truth = tr.read(1)
    _, n = ndimage.label(truth == 1)
    assert n == 1  # the lake and nothing else
    x, y = files.lake_point
    assert truth[int(y), int(x)] == 1
    cols = np.flatnonzero((truth == 1).any(axis=0))
    assert 0.5 * 600 < cols[-1] - cols[0] + 1 < 0.7 * 600
    ps = read_prompts(files.prompts_4326, files.crs, files.transform, 600, 600)
    assert len(ps.objects) == 1 and np.allclose(ps.objects[0].points, [files.lake_point])


def test_generators_are_deterministic(tmp_path):
    a = samples.river_scene(tmp_path / "a", 500, 400, seed=5)
    b = samples.river_scene(tmp_path / "b", 500, 400, seed=5)
    c = samples.river_scene(tmp_path / "c", 500, 400, seed=6)
    for pa, pb in ((a.image, b.image), (a.truth, b.truth), (a.prompts_4326, b.prompts_4326)):
        assert sha256_file(pa) == sha256_file(pb)
    assert sha256_file(a.image) != sha256_file(c.image)


def test_four_band_scene_with_nodata(tmp_path):
    valid = np.ones((300, 400), bool)
    valid[:, :60] = False
    recipe = samples.SceneRecipe(
        400, 300, seed=2, kind="4band", metres=10, crs="EPSG:32617",
        lake=samples.LakeSpec(250, 150, 90, 70), valid=valid,
    )
    files = samples.synthetic_scene(tmp_path, "x", recipe)
    with rasterio.open(files.image) as ds:
        assert ds.count == 4 and ds.dtypes[0] == "uint16" and ds.nodata == 0
        data = ds.read()
    with rasterio.open(files.truth) as ds:
        truth = ds.read(1)
    assert np.array_equal(truth == 255, ~valid) and (data[:, ~valid] == 0).all()
    assert (data[:, valid] > 0).all() and data.max() <= 10000
    water, land = data[3][truth == 1], data[3][truth == 0]  # NIR: water is dark
    assert np.median(water) < 0.2 * np.median(land)


def test_failed_write_leaves_nothing(tmp_path):
    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        samples._atomic_write(tmp_path / "x.tif", broken)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outdir(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    result = CliRunner().invoke(main, ["make-samples", str(tmp_path / "file.txt" / "out")])
    assert result.exit_code != 0
    assert result.output.startswith("Error: cannot create output folder")
    assert result.output.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# --------------------------------------------------------------------------- SAM sees water
@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_mobile_sam_segments_the_lake(vit_t, stem):
    """One point in the lake on a 1024 crop: MobileSAM's mask matches the truth (IoU > 0.85)."""
    truth_full = read_truth(stem)
    with Scene.open(SAMPLE_DIR / f"{stem}.tif", STEMS[stem]) as scene:
        prompts = read_prompts(
            SAMPLE_DIR / f"{stem}_prompts_utm.geojson",
            scene.crs,
            scene.transform,
            scene.width,
            scene.height,
        )
        x, y = prompts.objects[0].points[0]  # object 1: the lake
        c0 = int(np.clip(x - 512, 0, scene.width - 1024))
        r0 = int(np.clip(y - 512, 0, scene.height - 1024))
        rgb, valid = scene.read_rgb(Window(c0, r0, 1024, 1024), compute_stretch(scene))
    truth = truth_full[r0 : r0 + 1024, c0 : c0 + 1024]
    pred = vit_t.decode(vit_t.encode(rgb), points=[[x - c0, y - r0]], point_labels=[1])
    water = pred.best_logits()[0] > 0
    ok = truth != 255
    iou = (water & (truth == 1) & ok).sum() / ((water | (truth == 1)) & ok).sum()
    print(f"{stem}: MobileSAM IoU with one lake point on crop ({c0}, {r0}) = {iou:.4f}")
    assert iou > 0.85


# --------------------------------------------------------------------------- before scenes
@pytest.mark.parametrize("stem", STEMS)
def test_before_scene_is_the_same_place_with_lower_water_and_no_flood(stem):
    after, before = read_truth(stem), read_truth(f"{stem}_before")
    with rasterio.open(SAMPLE_DIR / f"{stem}_change_truth.tif") as ds:
        classes = ds.read(1)
    assert ((after == 255) == (before == 255)).all()
    water_a, water_b = after == 1, before == 1
    assert not (water_b & ~water_a).any(), "before water lies inside the after water"
    assert water_b.sum() < 0.97 * water_a.sum()
    expected = samples.change_classes(after, before)
    assert (classes == expected).all()
    assert {1, 2}.issubset(set(np.unique(classes).tolist()))
    with rasterio.open(SAMPLE_DIR / f"{stem}.tif") as a, rasterio.open(
        SAMPLE_DIR / f"{stem}_before.tif"
    ) as b:
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
        pa, pb = a.read(1), b.read(1)
    dry = (after == 0) & (before == 0)
    assert np.mean(np.abs(pa[dry].astype(int) - pb[dry].astype(int)) <= 2) > 0.97  # JPEG


def test_pair_generator_is_seeded(tmp_path):
    one = samples.before_after(samples.lake_river_scene, tmp_path / "a", 5, 600, 500)
    two = samples.before_after(samples.lake_river_scene, tmp_path / "b", 5, 600, 500)
    for x, y in zip((one[0].image, one[1].image, one[2]), (two[0].image, two[1].image, two[2]),
                    strict=True):
        assert sha256_file(x) == sha256_file(y)
    with rasterio.open(one[2]) as ds:
        assert set(np.unique(ds.read(1)).tolist()) >= {0, 1, 2}
