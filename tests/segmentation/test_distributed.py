"""Tile work on a Dask cluster: model once per worker, ordered results, retries, preflight."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("distributed")


from geofloodsam.errors import GeofloodsamError  # noqa: E402
from geofloodsam.raster.scene import Scene, compute_stretch  # noqa: E402
from geofloodsam.segmentation.distributed import (  # noqa: E402
    DaskExecutor,
    ModelSpec,
    open_session,
    plugin_loads,
    preflight,
    quiet_cluster_logs,
)
from geofloodsam.tiles.executor import Executor, SceneSpec, TileOutcome  # noqa: E402
from geofloodsam.tiles.grid import TileGrid  # noqa: E402

#: the reference encoder path on both sides: bf16 kernels (AMX, AVX512-BF16) round
#: differently with the thread count, fp32 torch gives the same tiles for the same threads
TINY = ModelSpec("tiny", device="cpu", precision="fp32", runtime="torch")


def box_probability(model, scene, stretch, payload) -> np.ndarray:
    """A whole-tile box prompt on one tile -> uint8 water probability (the test's tile work)."""
    window = payload
    rgb, _ = scene.read_rgb(window, stretch)
    pred = model.decode(model.encode(rgb), boxes=np.array([[0, 0, rgb.shape[1], rgb.shape[0]]]))
    prob = 1.0 / (1.0 + np.exp(-pred.best_logits()[0].astype(np.float64)))
    return np.round(prob * 255).astype(np.uint8)


def slow_echo(model, scene, stretch, payload) -> int:
    """Returns its payload after sleeping longer for smaller payloads (reverse finish order)."""
    time.sleep(0.05 * (8 - payload))
    return payload


@pytest.fixture(scope="module")
def scene_items(tmp_path_factory):
    """A small RGB sample scene cut into 12 tiles: (SceneSpec, window) items."""
    from geofloodsam.datasets.sample_scenes import river_scene

    files = river_scene(tmp_path_factory.mktemp("dask"), 600, 450)
    with Scene.open(files.image) as scene:
        stretch = compute_stretch(scene)
        spec = SceneSpec.of(scene, stretch)
        grid = TileGrid(scene.width, scene.height, 192, 48)
        return files.image, [(spec, tile.window) for tile in grid]


@pytest.fixture(scope="module")
def local_reference(scene_items):
    """The tiles computed in-process (the model the workers load: :data:`TINY`)."""
    from geofloodsam.model.sam import load_model

    tiny_model = load_model("tiny", device="cpu", precision="fp32", runtime="torch")
    image, items = scene_items
    spec = items[0][0]
    from geofloodsam.raster.scene import Stretch

    with Scene.open(image, spec.bands) as scene:
        stretch = Stretch.from_dict(spec.stretch)
        return [box_probability(tiny_model, scene, stretch, w) for _, w in items]


@pytest.fixture(scope="module")
def cluster2(scene_items):
    """A local cluster of 2 worker processes with the tiny model checked and registered."""
    with open_session(workers=2) as session:
        report = preflight(session.client, TINY, [scene_items[0]])
        yield session, report


# --------------------------------------------------------------------------- running tiles
@pytest.mark.slow
def test_cluster_matches_in_process(cluster2, scene_items, local_reference):
    session, report = cluster2
    assert len(report.workers) == 2
    assert report.model_info["checkpoint_sha256"] == "tiny-seed-0"
    executor = DaskExecutor(session.client, report.plugin)
    assert isinstance(executor, Executor)
    outcomes = list(executor.map(box_probability, scene_items[1]))
    assert len(outcomes) == len(local_reference)
    for outcome, expected in zip(outcomes, local_reference, strict=True):
        assert isinstance(outcome, TileOutcome) and outcome.seconds > 0
        np.testing.assert_array_equal(outcome.result, expected)
    assert len({o.worker for o in outcomes}) == 2, "both workers took tiles"
    assert set(plugin_loads(session.client, report.plugin).values()) == {1}


@pytest.mark.slow
def test_outcomes_come_back_in_submission_order(cluster2, scene_items):
    session, report = cluster2
    spec = scene_items[1][0][0]
    finished: list[int] = []
    executor = DaskExecutor(
        session.client, report.plugin, max_in_flight=8,
        on_outcome=lambda i, o: finished.append(o.result),
    )
    results = [o.result for o in executor.map(slow_echo, [(spec, i) for i in range(8)])]
    assert results == list(range(8))
    assert finished != sorted(finished), "tasks finished out of order, yet came back in order"


@pytest.mark.slow
def test_killed_worker_tiles_are_recomputed(cluster2, scene_items, local_reference):
    session, report = cluster2
    killed: list[int] = []

    def kill_after_three(index: int, outcome: TileOutcome) -> None:
        if len(killed) == 0 and index >= 2:
            killed.append(outcome.pid)
            os.kill(outcome.pid, signal.SIGKILL)

    executor = DaskExecutor(session.client, report.plugin, on_outcome=kill_after_three)
    outcomes = list(executor.map(box_probability, scene_items[1]))
    assert killed, "a worker was killed mid-run"
    for outcome, expected in zip(outcomes, local_reference, strict=True):
        np.testing.assert_array_equal(outcome.result, expected)
    session.client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
    loads = plugin_loads(session.client, report.plugin)
    assert set(loads.values()) <= {0, 1}, "a (re)started worker loads the model at most once"


@pytest.mark.slow
def test_closing_a_local_cluster_quietens_its_workers_only() -> None:
    """Before a local cluster closes, Dask's logs in its worker processes go quiet (a
    heartbeat in flight when the scheduler stops would otherwise print an ERROR traceback
    after Ctrl-C); this process's logging, where the scheduler and nannies run, is left as
    the caller set it."""
    import logging

    def level() -> int:
        return logging.getLogger("distributed").getEffectiveLevel()

    here = logging.getLogger("distributed").level
    with open_session(workers=2) as session:
        client = session.client
        before = set(client.run(level).values())
        quiet_cluster_logs(client)
        after = set(client.run(level).values())
    assert logging.CRITICAL not in before
    assert after == {logging.CRITICAL}
    assert logging.getLogger("distributed").level == here


# --------------------------------------------------------------------------- bad inputs
def test_unreachable_scheduler(free_port):
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(GeofloodsamError, match="cannot reach the Dask scheduler at " + address):
        open_session(scheduler=address, connect_timeout=1.0)
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scheduler": "tcp://127.0.0.1:1", "workers": 2}, "not both"),
        ({"workers": 0}, "--workers must be at least 1"),
        ({"scheduler": "no-port-here"}, "cannot reach the Dask scheduler at no-port-here"),
    ],
)
def test_bad_session_arguments(kwargs, match):
    with pytest.raises(GeofloodsamError, match=match) as err:
        open_session(connect_timeout=1.0, **kwargs)
    assert "\n" not in err.value.message


@pytest.mark.slow
def test_scene_missing_on_workers(cluster2, tmp_path):
    session, _ = cluster2
    with pytest.raises(GeofloodsamError, match="cannot read scene .*nowhere.tif: put the scenes"):
        preflight(session.client, TINY, [tmp_path / "nowhere.tif"])


@pytest.mark.slow
def test_worker_without_the_package(tmp_path, scene_items, spec_cluster):
    block = tmp_path / "block_geofloodsam.py"
    block.write_text("import sys\nsys.modules['geofloodsam'] = None\n")
    with spec_cluster({"preload": [str(block)]}) as cluster:
        with open_session(scheduler=cluster.scheduler_address) as session:
            with pytest.raises(GeofloodsamError, match=r"worker .*\(name bad\) cannot import "
                                                       r"geofloodsam") as err:
                preflight(session.client, TINY, [scene_items[0]], timeout=60)
    assert "\n" not in err.value.message


@pytest.mark.slow
def test_worker_without_the_weights(tmp_path, mobile_sam_path, scene_items, spec_cluster):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"GEOFLOODSAM_WEIGHTS_DIR": str(empty), "GEOFLOODSAM_HOME": str(empty)}
    with spec_cluster({"env": env}) as cluster:
        with open_session(scheduler=cluster.scheduler_address) as session:
            expected = r"worker .*\(name bad\) lacks the weights: checkpoint mobile_sam.pt"
            with pytest.raises(GeofloodsamError, match=expected) as err:
                preflight(session.client, ModelSpec("vit_t", device="cpu"), [scene_items[0]])
    assert "\n" not in err.value.message
