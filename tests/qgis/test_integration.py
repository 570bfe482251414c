"""The plugin in real QGIS: qgis_process sees the provider, runs segment and evaluate_raster,
QGIS loads the outputs with their styles, and cancelling kills the geofloodsam child.

QGIS's Python is the system's (``/usr/bin/python3`` with python3-qgis), not the venv, so QGIS
is driven through subprocesses, headless (``QT_QPA_PLATFORM=offscreen``), with the plugin
installed by ``geofloodsam qgis install`` into a temporary HOME. Without QGIS these tests
skip, except under ``GEOFLOODSAM_REQUIRE_SHARED=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: Debian's /usr/bin/qgis_process wrapper passes $QGIS_OPTS from /etc/default/qgis
#: ('--noversioncheck', a GUI option qgis_process refuses): call the binary behind it.
QGIS_PROCESS_CANDIDATES = ("qgis_process.bin", "qgis_process")
#: the crop of the sample scene: 512 x 512 px holding two water points (one tile)
WINDOW = Window(1280, 1280, 512, 512)
SEGMENT_ARGS = ["--tile-size", "512", "--overlap", "0"]


@pytest.fixture(scope="module")
def qgis_process(absent) -> str:
    """The qgis_process executable, with QGIS's Python able to import qgis.core."""
    exe = next(filter(None, map(shutil.which, QGIS_PROCESS_CANDIDATES)), None)
    if exe is None:
        absent("QGIS is not installed (no qgis_process; apt-get install qgis python3-qgis)")
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import qgis.core"], capture_output=True)
    if probe.returncode != 0:
        absent(f"{SYSTEM_PYTHON} cannot import qgis.core (apt-get install python3-qgis)")
    return exe


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory, qgis_process, mobile_sam_path) -> dict[str, str]:
    """Environment of the QGIS processes: a fresh HOME with the plugin installed."""
    home = tmp_path_factory.mktemp("qgis_home")
    env = {k: v for k, v in os.environ.items()
           if k not in ("QGIS_CUSTOM_CONFIG_PATH", "XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    runtime = home / "runtime"
    runtime.mkdir(mode=0o700)
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(runtime),
               GEOFLOODSAM_WEIGHTS_DIR=str(mobile_sam_path.parent))
    done = subprocess.run([sys.executable, "-m", "geofloodsam", "qgis", "install"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    env["GEOFLOODSAM_TEST_PLUGINS"] = str(
        home / ".local/share/QGIS/QGIS3/profiles/default/python/plugins")
    return env


@pytest.fixture(scope="module")
def crop(tmp_path_factory) -> dict[str, Path]:
    """A 512 x 512 crop of the sample scene and its truth, and the prompts inside it."""
    folder = tmp_path_factory.mktemp("crop")
    out = {}
    for key, name in (("scene", "riverside_rgb.tif"), ("truth", "riverside_rgb_truth.tif")):
        with rasterio.open(REPO / "sample_tiles" / name) as ds:
            profile = {**ds.profile, "width": WINDOW.width, "height": WINDOW.height,
                       "transform": ds.window_transform(WINDOW)}
            out[key] = folder / f"river_{key}.tif"
            with rasterio.open(out[key], "w", **profile) as dst:
                dst.write(ds.read(window=WINDOW))
            box, crs = shapely.box(*rasterio.windows.bounds(WINDOW, ds.transform)), ds.crs
    prompts = gpd.read_file(REPO / "sample_tiles" / "riverside_rgb_prompts_4326.geojson")
    inside = prompts[prompts.to_crs(crs).within(box)]
    assert len(inside) == 2
    out["prompts"] = folder / "prompts.geojson"
    inside.to_file(out["prompts"])
    return out


@pytest.fixture(scope="module")
def cli_outputs(crop, qgis_env, tmp_path_factory) -> dict[str, Path]:
    """What the CLI itself writes for the crop."""
    out = tmp_path_factory.mktemp("cli")
    done = subprocess.run(
        [sys.executable, "-m", "geofloodsam", "segment", str(crop["scene"]), "-p",
         str(crop["prompts"]), "-o", str(out), "-q", *SEGMENT_ARGS],
        env=qgis_env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    return {"mask": out / "river_scene_mask.tif", "polygons": out / "river_scene_flood.gpkg"}


def run_qgis_process(exe: str, env: dict, algorithm: str, **params) -> subprocess.CompletedProcess:
    args = [exe, "run", algorithm, "--", *(f"{k}={v}" for k, v in params.items())]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


LOAD_SCRIPT = r"""
import json, sys
from osgeo import gdal
from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
mask, polygons = sys.argv[1:3]
messages = []  # what QGIS's GDAL says opening the GeoPackage ("may only be partially supported")
gdal.PushErrorHandler(lambda cls, number, text: messages.append(text))
gdal.OpenEx(polygons)
gdal.PopErrorHandler()
raster = QgsRasterLayer(mask, "mask")
vector = QgsVectorLayer(polygons, "polygons", "ogr")
renderer = raster.renderer()
classes = {int(c.value): list(c.color.getRgb()) for c in renderer.classes()}
print(json.dumps({
    "raster_valid": raster.isValid(), "raster_crs": raster.crs().authid(),
    "raster_renderer": renderer.type(), "classes": classes,
    "vector_valid": vector.isValid(), "vector_crs": vector.crs().authid(),
    "features": vector.featureCount(),
    "fill": list(vector.renderer().symbol().color().getRgb()),
    "styles": vector.listStylesInDatabase()[0],
    "gdal_messages": messages,
}))
"""


def test_qgis_process_lists_the_provider(qgis_process, qgis_env) -> None:
    done = subprocess.run([qgis_process, "list"], env=qgis_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "geofloodsam:segment" in done.stdout
    assert "geofloodsam:evaluate_raster" in done.stdout


def test_qgis_process_finds_the_plugin_under_qgis_custom_config_path(
    qgis_process, qgis_env, tmp_path
) -> None:
    env = {**qgis_env, "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "config"),
           "HOME": str(tmp_path / "empty-home")}
    done = subprocess.run([sys.executable, "-m", "geofloodsam", "qgis", "install"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0 and str(tmp_path / "config" / "profiles") in done.stdout
    listed = subprocess.run([qgis_process, "list"], env=env, capture_output=True, text=True)
    assert "geofloodsam:segment" in listed.stdout, listed.stderr


@pytest.mark.slow
def test_qgis_process_segment_writes_what_the_cli_writes(
    qgis_process, qgis_env, crop, cli_outputs, tmp_path
) -> None:
    out = tmp_path / "chosen"
    mask, polygons = out / "water.tif", out / "flood areas.gpkg"
    done = run_qgis_process(
        qgis_process, qgis_env, "geofloodsam:segment", INPUT=crop["scene"],
        PROMPTS=crop["prompts"], TILE_SIZE=512, OVERLAP=0, OUTPUT_MASK=mask,
        OUTPUT_POLYGONS=polygons,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100 - done" in done.stdout  # the progress bar was fed
    assert sorted(p.name for p in out.iterdir()) == ["flood areas.gpkg", "water.qml", "water.tif"]
    with rasterio.open(mask) as a, rasterio.open(cli_outputs["mask"]) as b:
        assert a.crs == b.crs and a.transform == b.transform
        np.testing.assert_array_equal(a.read(1), b.read(1))
    ours = gpd.read_file(polygons, layer="flood")
    theirs = gpd.read_file(cli_outputs["polygons"], layer="flood")
    assert len(ours) == len(theirs) > 0
    assert list(ours.geometry.to_wkb()) == list(theirs.geometry.to_wkb())

    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    loaded = subprocess.run([str(SYSTEM_PYTHON), str(script), str(mask), str(polygons)],
                            env=qgis_env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    info = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert info["raster_valid"] and info["vector_valid"]
    assert info["raster_crs"] == info["vector_crs"] == "EPSG:32633"
    assert info["features"] == len(theirs)
    assert info["raster_renderer"] == "paletted"
    assert info["classes"]["0"][3] == 0  # dry transparent (from water.qml)
    assert info["classes"]["1"] == [30, 120, 255, 255]  # water blue
    assert info["fill"] == [30, 120, 255, 110]  # the GeoPackage's default style
    assert info["styles"] == 1
    assert info["gdal_messages"] == []  # GeoPackage 1.2: no version warning in QGIS 3.22


@pytest.mark.slow
def test_qgis_process_evaluate_raster(qgis_process, qgis_env, crop, cli_outputs,
                                      tmp_path) -> None:
    from geofloodsam.evaluation.raster import evaluate_raster

    report = tmp_path / "report"
    done = run_qgis_process(qgis_process, qgis_env, "geofloodsam:evaluate_raster",
                            PREDICTION=cli_outputs["mask"], TRUTH=crop["truth"],
                            OUTPUT_REPORT=report)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {"metrics.csv", "report.md"} <= {p.name for p in report.iterdir()}
    expected = evaluate_raster(cli_outputs["mask"], crop["truth"]).confusion.scores()["iou"]
    iou = next(ln for ln in done.stdout.splitlines() if ln.startswith("IOU:"))
    assert float(iou.split(":")[1]) == pytest.approx(expected, abs=1e-6)  # printed to 6 places


@pytest.mark.slow
def test_qgis_process_reports_a_bad_input_in_one_line(qgis_process, qgis_env, crop,
                                                      tmp_path) -> None:
    done = run_qgis_process(
        qgis_process, qgis_env, "geofloodsam:segment", INPUT=crop["scene"],
        BANDS="1,2", OUTPUT_MASK=tmp_path / "o" / "m.tif",
        OUTPUT_POLYGONS=tmp_path / "o" / "p.gpkg",
    )
    assert done.returncode != 0
    assert "--bands" in done.stdout + done.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


IN_PROCESS_SCRIPT = r"""
import json, os, sys, time
sys.path.insert(0, "/usr/share/qgis/python/plugins")
sys.path.insert(0, os.environ["GEOFLOODSAM_TEST_PLUGINS"])
from qgis.core import (QgsApplication, QgsProcessingContext, QgsProcessingFeedback,
                       QgsProcessingOutputLayerDefinition, QgsProcessingUtils, QgsProject)
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from geofloodsam.provider import GeofloodsamProvider  # the installed plugin
provider = GeofloodsamProvider()  # kept referenced, as the plugin does
QgsApplication.processingRegistry().addProvider(provider)
alg = QgsApplication.processingRegistry().createAlgorithmById("geofloodsam:segment")

class Feedback(QgsProcessingFeedback):
    pid = None
    progressed = None
    cancel_at_first_progress = False
    def pushDebugInfo(self, info):
        if "pid" in info:
            self.pid = int(info.split()[-1])
        super().pushDebugInfo(info)
    def setProgress(self, progress):
        super().setProgress(progress)
        if self.progressed is None:
            self.progressed = time.time()
        if self.cancel_at_first_progress:
            self.cancel()

mode, scene, prompts, out = sys.argv[1:5]
if mode == "setting":  # the provider's setting wins over the recorded environment
    from processing.core.ProcessingConfig import ProcessingConfig
    from geofloodsam import provider as module
    before = module.command()
    ProcessingConfig.setSettingValue(module.EXECUTABLE_SETTING, scene)
    after = module.command()
    ProcessingConfig.setSettingValue(module.EXECUTABLE_SETTING, "")  # the profile is shared
    print(json.dumps({"before": before, "after": after, "reset": module.command()}))
    sys.exit(0)
feedback = Feedback()
feedback.cancel_at_first_progress = mode == "cancel"
context = QgsProcessingContext()
project = QgsProject.instance()
context.setProject(project)
params = {"INPUT": scene, "PROMPTS": prompts, "TILE_SIZE": 512, "OVERLAP": 0}
for key, name in (("OUTPUT_MASK", "m.tif"), ("OUTPUT_POLYGONS", "p.gpkg")):
    # as the Processing dialog does with "Open output file after running algorithm"
    params[key] = QgsProcessingOutputLayerDefinition(os.path.join(out, name), project)
results, ok = alg.run(params, context, feedback)
loaded = {}
if mode == "load":  # what Processing does with the results (processing/gui/Postprocessing.py)
    for source, details in context.layersToLoadOnCompletion().items():
        layer = QgsProcessingUtils.mapLayerFromString(source, context,
                                                      typeHint=details.layerTypeHint)
        if details.postProcessor():
            details.postProcessor().postProcessLayer(layer, context, feedback)
        renderer = layer.renderer()
        colours = ([list(c.color.getRgb()) for c in renderer.classes()][:2]
                   if hasattr(renderer, "classes") else [list(renderer.symbol().color().getRgb())])
        loaded[os.path.basename(source)] = {"name": details.name, "colours": colours}
print(json.dumps({"pid": feedback.pid, "cancelled": feedback.isCanceled(),
                  "results": {k: str(v) for k, v in results.items()}, "loaded": loaded,
                  "stop_s": time.time() - feedback.progressed}))
"""


def run_in_qgis(mode: str, qgis_env: dict, crop: dict, tmp_path: Path) -> dict:
    """Run geofloodsam:segment inside QGIS's Python (mode 'cancel' or 'load')."""
    script = tmp_path / "in_qgis.py"
    script.write_text(IN_PROCESS_SCRIPT)
    done = subprocess.run(
        [str(SYSTEM_PYTHON), str(script), mode, str(crop["scene"]), str(crop["prompts"]),
         str(tmp_path / "out")],
        env=qgis_env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_processing_loads_the_outputs_named_and_styled(qgis_env, crop, tmp_path) -> None:
    info = run_in_qgis("load", qgis_env, crop, tmp_path)
    assert not info["cancelled"] and set(info["results"]) == {"OUTPUT_MASK", "OUTPUT_POLYGONS"}
    assert info["loaded"] == {
        "m.tif": {"name": "river_scene flood mask",
                  "colours": [[255, 255, 255, 0], [30, 120, 255, 255]]},  # dry clear, water
        "p.gpkg": {"name": "river_scene flood polygons", "colours": [[30, 120, 255, 110]]},
    }


def test_provider_setting_chooses_the_executable(qgis_env, crop, tmp_path) -> None:
    info = run_in_qgis("setting", qgis_env, crop, tmp_path)
    assert info["before"] == [str(Path(sys.executable).absolute().parent / "geofloodsam")]
    assert info["after"] == [str(crop["scene"])]  # any existing file: the setting is used as is
    assert info["reset"] == info["before"]


@pytest.mark.slow
def test_cancel_kills_the_geofloodsam_child(qgis_env, crop, tmp_path) -> None:
    info = run_in_qgis("cancel", qgis_env, crop, tmp_path)
    assert info["cancelled"] and info["pid"] and info["results"] == {}
    assert info["stop_s"] < 10  # killed, not left to finish
    assert not Path(f"/proc/{info['pid']}").exists()  # gone (and reaped)
    assert list((tmp_path / "out").iterdir()) == []  # no outputs, no work folder


@pytest.mark.slow
def test_qgis_process_maps_a_sentinel1_chip_by_its_index(qgis_process, qgis_env, shared,
                                                          tmp_path) -> None:
    """SENSOR / METHOD reach the CLI: a radar chip, promptless, the water index alone."""
    chip = shared("data/sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif")
    mask = tmp_path / "chosen" / "radar.tif"
    done = run_qgis_process(
        qgis_process, qgis_env, "geofloodsam:segment", INPUT=chip, SENSOR=2, METHOD=2,
        OUTPUT_MASK=mask, OUTPUT_POLYGONS=tmp_path / "chosen" / "radar.gpkg",
    )  # SENSOR 2 = s1, METHOD 2 = index (the registry order, recorded at install)
    assert done.returncode == 0, done.stdout + done.stderr
    cli = tmp_path / "cli"
    ran = subprocess.run(
        [sys.executable, "-m", "geofloodsam", "segment", str(chip), "-o", str(cli), "-q",
         "--sensor", "s1", "--method", "index"], env=qgis_env, capture_output=True, text=True,
    )
    assert ran.returncode == 0, ran.stderr
    with rasterio.open(mask) as a, rasterio.open(cli / f"{chip.stem}_mask.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


# --------------------------------------------------------------------------- geofloodsam:flood
FLOOD_LOAD_SCRIPT = r"""
import json, os, sys
sys.path.insert(0, "/usr/share/qgis/python/plugins")
sys.path.insert(0, os.environ["GEOFLOODSAM_TEST_PLUGINS"])
from qgis.core import (QgsApplication, QgsProcessingContext, QgsProcessingFeedback,
                       QgsProcessingOutputLayerDefinition, QgsProcessingUtils, QgsProject)
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from geofloodsam.provider import GeofloodsamProvider
provider = GeofloodsamProvider()
QgsApplication.processingRegistry().addProvider(provider)
alg = QgsApplication.processingRegistry().createAlgorithmById("geofloodsam:flood")
after, before, out = sys.argv[1:4]
context = QgsProcessingContext()
project = QgsProject.instance()
context.setProject(project)
feedback = QgsProcessingFeedback()
params = {"AFTER": after, "BEFORE": before, "METHOD": 2}
for key, name in (("OUTPUT_CLASSES", "c.tif"), ("OUTPUT_POLYGONS", "p.gpkg")):
    params[key] = QgsProcessingOutputLayerDefinition(os.path.join(out, name), project)
results, ok = alg.run(params, context, feedback)
loaded = {}
for source, details in context.layersToLoadOnCompletion().items():
    layer = QgsProcessingUtils.mapLayerFromString(source, context, typeHint=details.layerTypeHint)
    if details.postProcessor():
        details.postProcessor().postProcessLayer(layer, context, feedback)
    renderer = layer.renderer()
    colours = ([list(c.color.getRgb()) for c in renderer.classes()]
               if hasattr(renderer, "classes") else [list(renderer.symbol().color().getRgb())])
    loaded[details.name] = {"colours": colours, "features": getattr(layer, "featureCount",
                                                                    lambda: None)()}
print(json.dumps({"ok": ok, "results": {k: str(v) for k, v in results.items()},
                  "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def s2_pair(tmp_path_factory) -> tuple[Path, Path]:
    from tests.change.conftest import water_of, write_s2

    folder = tmp_path_factory.mktemp("pair")
    return (write_s2(folder / "after.tif", water_of("after"), 2),
            write_s2(folder / "before.tif", water_of("before"), 5))


@pytest.mark.slow
def test_qgis_process_flood_writes_what_the_cli_writes(qgis_process, qgis_env, s2_pair,
                                                       tmp_path) -> None:
    after, before = s2_pair
    cli = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "geofloodsam", "flood", str(after), "--before",
                           str(before), "--method", "index", "-o", str(cli), "-q"],
                          env=qgis_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "chosen"
    done = run_qgis_process(qgis_process, qgis_env, "geofloodsam:flood", AFTER=after,
                            BEFORE=before, METHOD=2, OUTPUT_CLASSES=out / "classes.tif",
                            OUTPUT_POLYGONS=out / "classes.gpkg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "classes.gpkg", "classes.qml", "classes.tif", "classes_run.json"]
    with rasterio.open(out / "classes.tif") as a, rasterio.open(cli / "after_change.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
    for layer in ("flood", "permanent_water", "receded"):
        ours = gpd.read_file(out / "classes.gpkg", layer=layer)
        theirs = gpd.read_file(cli / "after_change.gpkg", layer=layer)
        assert list(ours.geometry.to_wkb()) == list(theirs.geometry.to_wkb())


@pytest.mark.slow
def test_qgis_process_flood_bad_input_is_one_line(qgis_process, qgis_env, s2_pair,
                                                  tmp_path) -> None:
    done = run_qgis_process(qgis_process, qgis_env, "geofloodsam:flood", AFTER=s2_pair[0],
                            METHOD=2, OUTPUT_CLASSES=tmp_path / "o" / "c.tif",
                            OUTPUT_POLYGONS=tmp_path / "o" / "p.gpkg")
    assert done.returncode != 0
    assert "exactly one" in done.stdout + done.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


@pytest.mark.slow
def test_processing_loads_the_flood_outputs_styled(qgis_env, s2_pair, tmp_path) -> None:
    script = tmp_path / "flood_in_qgis.py"
    script.write_text(FLOOD_LOAD_SCRIPT)
    done = subprocess.run([str(SYSTEM_PYTHON), str(script), str(s2_pair[0]), str(s2_pair[1]),
                           str(tmp_path / "out")], env=qgis_env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["ok"]
    loaded = info["loaded"]
    assert set(loaded) == {"after flood classes", "after flood", "after permanent water",
                           "after receded"}
    assert loaded["after flood classes"]["colours"] == [
        [255, 255, 255, 0], [255, 85, 0, 255], [30, 120, 255, 255], [255, 220, 0, 255]]
    assert loaded["after flood"]["colours"] == [[255, 85, 0, 130]]
    assert loaded["after permanent water"]["colours"] == [[30, 120, 255, 130]]
    assert loaded["after receded"]["colours"] == [[255, 220, 0, 130]]
    assert all(loaded[k]["features"] > 0 for k in ("after flood", "after receded"))
