"""The tile engine (:mod:`geofloodsam.tiles.engine`): seeding of user prompts, the tiles
each state counts as, and, with an *oracle* SAM whose answer is known exactly, whole runs:
waves across tiles, caps, featureless and dry clicks (split from the pipeline tests)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from oracle_scenes import (
    ORIGIN,
    UTM,
    OracleModel,
    dark_scene,
    ellipse,
    read_mask,
    write_points,
    write_raster,
)
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import box

from geofloodsam.evaluation.metrics import scores
from geofloodsam.geo.transforms import pixel_to_world
from geofloodsam.segmentation.pipeline import segment
from geofloodsam.tiles.engine import ObjectInfo, TileEngine, box_seeds, point_seeds
from geofloodsam.tiles.executor import TileOutcome
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.store import TileStore
from geofloodsam.tiles.tasks import (
    EMPTY,
    ChunkJob,
    ChunkResult,
    Crop,
    Seed,
    TileResult,
    TileState,
    TileTask,
)


def test_point_seeds_go_to_the_most_central_tile() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    seeds = point_seeds(grid, 1, np.array([[200.5, 10.5], [600.5, 600.5], [210.5, 12.5]]),
                        np.array([1, 1, 0]))
    assert sorted(seeds) == sorted({grid.best_tile(200.5, 10.5).index,
                                    grid.best_tile(600.5, 600.5).index})
    first = seeds[grid.best_tile(200.5, 10.5).index]
    assert first.labels.tolist() == [1, 0]  # the negative point goes with the tile holding it
    assert first.points.tolist() == [[200.5, 10.5], [210.5, 12.5]]  # tile (0, 0): local == full


def test_a_box_larger_than_a_tile_is_split_into_clipped_tile_boxes() -> None:
    grid = TileGrid(1000, 777, 256, 64)
    small = box_seeds(grid, 1, np.array([210.0, 220.0, 300.0, 330.0]))
    assert len(small) == 1  # fits in one tile: one box
    big = np.array([50.0, 40.0, 700.0, 500.0])
    seeds = box_seeds(grid, 2, big)
    assert len(seeds) > 4
    covered = np.zeros((777, 1000), bool)
    for index, seed in seeds.items():
        tile = grid.tiles[index]
        x0, y0, x1, y1 = seed.box + np.array([tile.x0, tile.y0, tile.x0, tile.y0])
        assert tile.x0 <= x0 < x1 <= tile.x1 and tile.y0 <= y0 < y1 <= tile.y1  # clipped
        covered[int(y0) : int(y1), int(x0) : int(x1)] = True
    assert covered[40:500, 50:700].all() and covered.sum() == 460 * 650  # exactly the box


def test_each_tile_state_is_counted_once_and_new_tiles_are_kept(tmp_path) -> None:
    """A tile in each state a task can hand back, through ``take``: each in its counter."""
    grid = TileGrid(640, 256, 128, 0)
    engine = TileEngine(grid, TileStore(tmp_path), {1: ObjectInfo(0, "none")}, key=("run",))
    states = list(TileState)
    seed = Seed(1, box=np.array([0.0, 0.0, 128.0, 128.0]))
    tasks = [TileTask(i, ("run", i), grid.tiles[i].window, [seed]) for i in range(len(states))]
    result = ChunkResult(tiles=[TileResult(None, {}, (0, 0), state) for state in states])
    engine.take(ChunkJob(tasks, keep=True), TileOutcome(result, 0.1, "local", 0))
    stats = engine.stats
    assert stats.tile_states == {state: 1 for state in TileState}
    assert (stats.tiles_encoded, stats.tiles_reencoded, stats.skipped_nodata_tiles,
            stats.tiles_indexed) == (1, 1, 1, 1)
    assert stats.featureless_tiles == {states.index(TileState.FEATURELESS)}
    assert engine.embedding_keys() == [("run", states.index(TileState.NEW))]
    assert stats.tile_decodes == 0 and len(engine.store) == 0  # nothing was decoded


@pytest.mark.parametrize("carried", [True, False])
def test_a_carried_seed_that_maps_nothing_does_not_vote_the_objects_water_dry(
    tmp_path, carried: bool
) -> None:
    """Tile 0 maps a lake inside its overlap with tile 1; the seed carried into tile 1 (from
    another part of the object) finds nothing there. Tile 1 then has no say on the object,
    and the blend keeps the lake as tile 0 mapped it; before, tile 1's empty answer was
    averaged in and cut the lake along tile 0's edge. A user's click that maps nothing still
    counts (it says: not here)."""
    from geofloodsam.stitch.blend import blend_strip

    grid = TileGrid(320, 128, 192, 64)  # tiles [0, 192) and [128, 320): overlap 128..192
    store = TileStore(tmp_path)
    engine = TileEngine(grid, store, {1: ObjectInfo(0, "point")}, key=("run",))
    lake = np.zeros((128, 192), np.float16)
    lake[40:80, 140:180] = 1.0  # in the overlap
    first = Seed(1, np.array([[160.5, 60.5]]), np.array([1]), propagate=True)
    later = Seed(1, np.array([[10.5, 100.5]]), np.array([1]), propagate=True, carried=carried)
    for index, seed, crop in [(0, first, Crop(0, 0, lake)), (1, later, Crop(0, 0, EMPTY))]:
        task = TileTask(index, ("run", index), grid.tiles[index].window, [seed])
        result = ChunkResult(tiles=[TileResult([crop], {}, (128, 192))])
        engine.take(ChunkJob([task]), TileOutcome(result, 0.1, "local", 0))
    assert (1 in store.covering(1)) is not carried
    prob = blend_strip(grid, store, 0, 128).prob
    kept = prob[40:80, 140:180] > 0.5
    assert kept.all() if carried else not kept.all()


# --------------------------------------------------------------------------- waves (oracle)
def test_one_point_maps_the_whole_lake_across_tiles(tmp_path, big_lake) -> None:
    scene, water = big_lake
    prompts = write_points(tmp_path / "p.geojson", [(330.5, 290.5)])
    model = OracleModel()
    res = segment(scene, prompts, tmp_path / "out", tile_size=192, overlap=48, sam_model=model,
                  quiet=True, clicked_only=True)
    mask = read_mask(res.mask_path)
    assert ((mask == 1) == water).all()  # the oracle's answer, whole: no square, no seam
    grid = TileGrid(700, 560, 192, 48)
    touching = [t for t in grid if water[t.y0 : t.y1, t.x0 : t.x1].any()]
    assert res.tiles_encoded == len(model.encoded) < len(touching) < len(grid)  # only needed ones
    assert len(set(model.encoded)) == len(model.encoded)  # each tile encoded once
    assert res.record["tiles"]["waves"] > 1


@pytest.mark.parametrize("clicked_only", [False, True])
def test_a_click_also_maps_the_scenes_water_of_its_colour(tmp_path, clicked_only) -> None:
    """A lake, a pond of the lake's colour in another tile and a dark brown field (water to
    the oracle, as dark fields are to SAM): a click on the lake maps the lake and the pond
    (the water alike: polygons of prompt type ``alike``), never the field; with
    ``clicked_only`` the lake alone, encoding only the tiles the lake needs."""
    w, h = 700, 560
    lake = ellipse(w, h, 150, 150, 90, 70)
    pond = ellipse(w, h, 560, 420, 40, 30)
    field = np.zeros((h, w), bool)
    field[380:500, 60:260] = True
    data = dark_scene(w, h, lake | pond)
    data[:, field] = np.array([90, 45, 10], np.uint8)[:, None]
    scene = write_raster(tmp_path / "ponds.tif", data)
    prompts = write_points(tmp_path / "p.geojson", [(150.5, 150.5)])
    model = OracleModel()
    res = segment(scene, prompts, tmp_path / "out", tile_size=192, overlap=48, sam_model=model,
                  quiet=True, clicked_only=clicked_only)
    mask = read_mask(res.mask_path) == 1
    np.testing.assert_array_equal(mask, lake if clicked_only else lake | pond)
    kinds = set(gpd.read_file(res.gpkg_path, layer="flood")["prompt_type"])
    assert kinds == ({"point"} if clicked_only else {"point", "alike"})
    assert ("from 1 object(s) and the water alike;" in res.summary()) is not clicked_only
    assert (res.record["prompts"]["water_alike"] is None) is clicked_only
    grid = TileGrid(w, h, 192, 48)
    assert (res.tiles_encoded < len(grid)) if clicked_only else res.tiles_encoded == len(grid)


class RecordingBar:
    """A stand-in progress bar that records every total it had and how far it went."""

    bars: list = []

    def __init__(self, total: int, **_) -> None:
        self.total, self.n, self.seen = total, 0, [(0, total)]
        RecordingBar.bars.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *_) -> bool:
        return False

    def update(self, n: int = 1) -> None:
        self.n += n
        self.seen.append((self.n, self.total))

    def refresh(self) -> None:
        pass


def test_progress_total_is_known_before_the_first_wave(tmp_path, big_lake, monkeypatch) -> None:
    """The bar's total is the grid's tiles from the start; it only moves forward, to the end."""
    scene, _ = big_lake
    prompts = write_points(tmp_path / "p.geojson", [(330.5, 290.5)])
    RecordingBar.bars = []
    monkeypatch.setattr("geofloodsam.segmentation.pipeline.tqdm", RecordingBar)
    res = segment(scene, prompts, tmp_path / "out", tile_size=192, overlap=48,
                  sam_model=OracleModel(), quiet=True)
    (bar,) = RecordingBar.bars
    grid = len(TileGrid(700, 560, 192, 48))
    assert {total for _, total in bar.seen} == {grid}
    done = [n for n, _ in bar.seen]
    assert done == sorted(done) and done[-1] == grid
    assert res.record["tiles"]["waves"] > 1  # several waves, one total


def test_box_larger_than_a_tile_maps_everything_in_it(tmp_path, big_lake) -> None:
    scene, water = big_lake
    t = from_origin(*ORIGIN, 10.0, 10.0)
    (x0, y0), (x1, y1) = pixel_to_world(t, 60, 80), pixel_to_world(t, 620, 510)
    gdf = gpd.GeoDataFrame(geometry=[box(x0, y1, x1, y0)], crs=UTM)
    gdf.to_file(tmp_path / "box.geojson")
    res = segment(scene, tmp_path / "box.geojson", tmp_path / "out", tile_size=192, overlap=48,
                  sam_model=OracleModel(), quiet=True)
    expected = water.copy()
    inside = np.zeros_like(water)
    inside[80:510, 60:620] = True
    expected &= inside
    np.testing.assert_array_equal(read_mask(res.mask_path) == 1, expected)


def test_promptless_mode_segments_every_tile_but_nodata(tmp_path) -> None:
    w, h = 500, 400
    water = ellipse(w, h, 150, 150, 120, 90) | ellipse(w, h, 420, 330, 60, 50)
    data = dark_scene(w, h, water).astype(np.uint16) + 1  # 0 is nodata
    data[:, :, 360:] = np.where(np.arange(h)[:, None] < 200, 0, data[:, :, 360:])
    scene = write_raster(tmp_path / "s.tif", data, nodata=0)
    model = OracleModel()
    res = segment(scene, None, tmp_path / "out", tile_size=128, overlap=32, stretch="0,255",
                  sam_model=model, quiet=True)
    mask = read_mask(res.mask_path)
    nodata = (data == 0).all(axis=0)
    assert ((mask == 255) == nodata).all()
    np.testing.assert_array_equal(mask == 1, water & ~nodata)
    grid = TileGrid(w, h, 128, 32)
    empty = [t for t in grid if nodata[t.y0 : t.y1, t.x0 : t.x1].all()]
    assert empty and res.record["tiles"]["skipped_nodata"] == len(empty)
    assert res.tiles_encoded == len(grid) - len(empty)
    frame = gpd.read_file(res.gpkg_path, layer="flood")
    assert set(frame["prompt_type"]) == {"none"} and len(frame) == 2  # not cut at tile edges


def test_a_featureless_tile_is_left_dry_with_a_warning(tmp_path, capsys) -> None:
    w, h = 512, 256
    data = dark_scene(w, h, np.zeros((h, w), bool))
    data[:, :, 256:] = 0  # the right tile is one colour: SAM would call all of it water
    scene = write_raster(tmp_path / "half.tif", data)
    res = segment(scene, None, tmp_path / "out", tile_size=256, overlap=0,
                  sam_model=OracleModel(), quiet=True)
    assert (read_mask(res.mask_path)[:, 256:] == 0).all()
    assert res.record["tiles"]["featureless"] == 1 and res.record["tiles"]["encoded"] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 tile(s)" in err[0] and "featureless" in err[0]


def test_an_object_over_max_object_tiles_is_named_in_a_warning_and_run_json(
    tmp_path, big_lake, capsys
) -> None:
    scene, _ = big_lake
    prompts = write_points(tmp_path / "p.geojson", [(330.5, 290.5), (20.5, 20.5)],
                           objects=[7, 8])
    res = segment(scene, prompts, tmp_path / "out", tile_size=192, overlap=48,
                  sam_model=OracleModel(), quiet=True, max_object_tiles=1)
    err = capsys.readouterr().err
    assert "Warning: object(s) 1 reached the limit of 1 tiles (--max-object-tiles)" in err
    assert res.record["tiles"]["capped_object_ids"] == [1]


def test_a_click_on_dry_land_warns_names_the_object_and_maps_nothing(tmp_path, capsys) -> None:
    """On a 4-band scene (a water index): SAM (the oracle: dark pixels) and NDWI both call
    the second click dry, so object 2 maps nothing; the lake of object 1 is mapped."""
    from geofloodsam.datasets.sample_scenes import LakeSpec, SceneRecipe, synthetic_scene

    recipe = SceneRecipe(640, 480, seed=5, kind="4band", lake=LakeSpec(380, 240, 150, 100))
    files = synthetic_scene(tmp_path, "dry", recipe, prompts=False)
    truth = read_mask(files.truth) == 1
    with rasterio.open(files.image) as ds:
        brightness = ds.read([1, 2, 3]).astype(float).mean(axis=0)
    far = ndimage.distance_transform_edt(~truth) > 40
    r, c = np.unravel_index(np.argmax(np.where(far, brightness, -1)), brightness.shape)
    lake = (files.lake_point[0], files.lake_point[1])
    feats = [{"type": "Feature", "properties": {"object": k, "label": 1},
              "geometry": {"type": "Point", "coordinates": list(files.transform * xy)}}
             for k, xy in ((1, lake), (2, (c + 0.5, r + 0.5)))]
    prompts = tmp_path / "clicks.geojson"
    prompts.write_text(json.dumps({"type": "FeatureCollection", "features": feats,
                                   "crs": {"type": "name", "properties":
                                           {"name": "urn:ogc:def:crs:EPSG::32633"}}}))
    res = segment(files.image, prompts, tmp_path / "out", tile_size=256, overlap=64,
                  sam_model=OracleModel(), quiet=True)
    err = capsys.readouterr().err
    assert "Warning: object 2 was clicked on what SAM and the water index both call dry" in err
    assert "object 1 was clicked" not in err
    assert res.record["tiles"]["dry_object_ids"] == [2]
    polygons = gpd.read_file(res.gpkg_path)
    assert set(polygons["object_id"]) == {1}
    mask = read_mask(res.mask_path) == 1
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9


# --------------------------------------------------------------------------- real MobileSAM
@pytest.mark.slow
def test_real_sam_maps_a_lake_across_tiles_from_one_point(tmp_path, vit_t) -> None:
    from geofloodsam.datasets.sample_scenes import lake_scene

    files = lake_scene(tmp_path, size=1400)  # lake ~840 px across; tiles 512: 4x4 grid
    res = segment(files.image, files.prompts_4326, tmp_path / "out", tile_size=512, overlap=128,
                  sam_model=vit_t, quiet=True)
    truth = read_mask(files.truth)
    iou = scores(read_mask(res.mask_path) == 1, truth == 1, truth != 255)["iou"]
    print(f"lake IoU {iou:.4f}, tiles encoded {res.tiles_encoded}")
    assert res.tiles_encoded > 4 and res.record["tiles"]["waves"] > 1
    assert iou > 0.9


@pytest.mark.slow
def test_real_sam_tiled_result_has_no_seams(tmp_path, vit_t) -> None:
    """Tiled (3x3 tiles of 512) vs one tile covering the whole 1024x1024 sample scene."""
    from geofloodsam.datasets.sample_scenes import LakeSpec, SceneRecipe, synthetic_scene

    size = 1024
    lake = LakeSpec(size * 0.5, size * 0.47, size * 0.3, size * 0.24, angle=0.3, roughness=0.1)
    files = synthetic_scene(tmp_path, "seams", SceneRecipe(size, size, seed=2, lake=lake, ponds=3))
    masks = {}
    for name, tile, overlap in (("one", size, 0), ("tiled", 512, 128)):
        res = segment(files.image, files.prompts_utm, tmp_path / name, tile_size=tile,
                      overlap=overlap, sam_model=vit_t, quiet=True)
        masks[name] = read_mask(res.mask_path) == 1
    assert res.tiles_encoded > 1
    iou = scores(masks["tiled"], masks["one"])["iou"]
    print(f"tiled vs one tile IoU {iou:.4f}")
    assert iou > 0.97
