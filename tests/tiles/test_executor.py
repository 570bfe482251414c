"""The executor contract: both executors implement :class:`Executor`, and the local one runs
work in this process, in order, with the scene opened once and kept embeddings on request."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

from geofloodsam.raster.scene import Scene, compute_stretch
from geofloodsam.tiles.executor import Executor, LocalExecutor, SceneSpec, TileOutcome
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.work import RunEmbeddings


@pytest.mark.parametrize("name", ["LocalExecutor", "DaskExecutor"])
def test_each_executor_has_the_protocols_methods_and_signatures(name: str) -> None:
    from geofloodsam.segmentation.distributed import DaskExecutor  # imports without Dask

    cls = {"LocalExecutor": LocalExecutor, "DaskExecutor": DaskExecutor}[name]
    for method in ("map", "forget"):
        want = inspect.signature(getattr(Executor, method))
        have = inspect.signature(getattr(cls, method))
        assert list(have.parameters) == list(want.parameters), (name, method)
        for p, q in zip(have.parameters.values(), want.parameters.values(), strict=True):
            assert (p.kind, p.default) == (q.kind, q.default), (name, method, p.name)


def _tile_mean(model, scene, stretch, payload, *keeper) -> tuple:
    """A work function: the mean of a window's RGB, and what the executor passed in."""
    rgb, _ = scene.read_rgb(payload, stretch)
    return float(rgb.mean()), model, len(keeper)


@pytest.fixture
def scene_items(tmp_path):
    from geofloodsam.datasets.sample_scenes import river_scene

    files = river_scene(tmp_path, 300, 200)
    with Scene.open(files.image) as scene:
        spec = SceneSpec.of(scene, compute_stretch(scene))
        grid = TileGrid(scene.width, scene.height, 128, 32)
        return files.image, spec, [tile.window for tile in grid]


@pytest.mark.parametrize("cache", [False, True])
def test_local_executor_runs_each_item_here_in_order(scene_items, cache: bool) -> None:
    image, spec, windows = scene_items
    model = object()
    executor = LocalExecutor(model)
    assert isinstance(executor, Executor)
    try:
        outcomes = list(executor.map(_tile_mean, [(spec, w) for w in windows], cache=cache))
    finally:
        executor.close()
    with Scene.open(image) as scene:
        stretch = compute_stretch(scene)
        expected = [float(scene.read_rgb(w, stretch)[0].mean()) for w in windows]
    assert all(isinstance(o, TileOutcome) for o in outcomes)
    assert [o.result[0] for o in outcomes] == expected
    assert {(o.result[1] is model, o.result[2]) for o in outcomes} == {(True, int(cache))}
    assert {(o.worker, o.pid) for o in outcomes} == {("local", os.getpid())}


def test_local_executor_forgets_kept_embeddings(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from geofloodsam.model.sam import Embedding

    executor = LocalExecutor(None, tmp_path)
    executor.keeper.put(("run", 0), Embedding(torch.zeros(1, 4, 4), (8, 8), (8, 8)))
    assert ("run", 0) in executor.keeper and isinstance(executor.keeper, RunEmbeddings)
    executor.forget([("run", 0)])
    assert ("run", 0) not in executor.keeper


def test_scene_spec_reopens_the_planned_scene(scene_items) -> None:
    image, spec, windows = scene_items
    with spec.open() as scene, Scene.open(image) as direct:
        np.testing.assert_array_equal(scene.read_rgb(windows[0], compute_stretch(direct))[0],
                                      direct.read_rgb(windows[0], compute_stretch(direct))[0])
        assert tuple(scene.bands) == spec.bands
