"""The QGIS plugin's QGIS-free parts (runner, tasks), `geofloodsam qgis`, and JSON progress.

A fake ``geofloodsam`` (a small Python script) stands in for the real CLI, so these run in
the venv without QGIS; tests/qgis/test_integration.py drives the real thing in QGIS.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from geofloodsam import __version__, progress
from geofloodsam.cli import main
from geofloodsam.cli import qgis as commands_qgis
from geofloodsam.qgis.plugin import runner, tasks

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "geofloodsam" / "qgis" / "plugin"

FAKE_CLI = r'''
import json, os, subprocess, sys, time
args = sys.argv[1:]
assert args[:2] == ["--progress-format", "json"], args
args = args[2:]
mode = os.environ.get("FAKE_MODE", "ok")
def progress(n, total):
    print(json.dumps({"event": "progress", "desc": args[0], "n": n, "total": total}),
          file=sys.stderr, flush=True)
progress(0, 2)
if mode == "error":
    print("Error: --threshold must be between 0 and 1 (exclusive), got 2.0.", file=sys.stderr)
    sys.exit(1)
if mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.environ["FAKE_PIDS"], "w") as f:
        json.dump([os.getpid(), child.pid], f)
    time.sleep(60)
print("a message on stderr", file=sys.stderr)
out = args[args.index("-o") + 1]
print(f"river.tif: 1 km² of water -> {out}", file=sys.stderr)
if args[0] == "segment" and mode != "nothing":
    stem = os.path.splitext(os.path.basename(args[1]))[0]
    for suffix in ("_mask.tif", "_mask.qml", "_flood.gpkg", "_run.json"):
        with open(os.path.join(out, stem + suffix), "w") as f:
            f.write(suffix + " " + " ".join(args))
if args[0] == "flood" and mode != "nothing":
    stem = os.path.splitext(os.path.basename(args[1]))[0]
    for suffix in ("_change.tif", "_change.qml", "_change.gpkg", "_change_run.json"):
        with open(os.path.join(out, stem + suffix), "w") as f:
            f.write(suffix + " " + " ".join(args))
if args[0] == "evaluate-raster":
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.csv"), "w") as f:
        f.write("model,prompt,iou,dice,precision,recall\npred,,0.5,0.6,0.7,0.8\n")
progress(2, 2)
print("done on stdout")
'''


@pytest.fixture
def fake_cli(tmp_path) -> list[str]:
    script = tmp_path / "fake_geofloodsam.py"
    script.write_text(FAKE_CLI)
    return [sys.executable, str(script)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0: look at its state
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


# --------------------------------------------------------------------------- runner
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"event": "progress", "desc": "segment", "n": 3, "total": 12}', ("segment", 0.25)),
        ('{"event": "progress", "desc": "x", "n": 3, "total": null}', ("x", None)),
        ('{"event": "progress", "desc": "x", "n": 9, "total": 4}', ("x", 1.0)),
        ('{"event": "other"}', None),
        ('{"event": broken', None),
        ("segment:  50%|#####     | 1/2", None),
    ],
)
def test_parse_progress(line, expected) -> None:
    assert runner.parse_progress(line) == expected


def test_run_streams_progress_and_messages(fake_cli, tmp_path) -> None:
    seen, messages = [], []
    out = runner.run(fake_cli, ["evaluate-raster", "p.tif", "t.tif", "-o", str(tmp_path / "r")],
                     on_progress=lambda d, f: seen.append((d, f)), on_message=messages.append)
    assert seen == [("evaluate-raster", 0.0), ("evaluate-raster", 1.0)]
    assert "a message on stderr" in messages and out == ["done on stdout"]


def test_run_raises_the_cli_error_line(fake_cli, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "error")
    with pytest.raises(runner.RunError, match=r"^--threshold must be between 0 and 1"):
        runner.run(fake_cli, ["segment"])


def test_run_that_cannot_start_is_a_run_error(tmp_path) -> None:
    with pytest.raises(runner.RunError, match="cannot start"):
        runner.run([str(tmp_path / "missing")], ["segment"])


def test_cancel_kills_the_child_and_its_children(fake_cli, tmp_path, monkeypatch) -> None:
    pids_file = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_MODE", "hang")
    monkeypatch.setenv("FAKE_PIDS", str(pids_file))
    state = {"started": None}

    def cancelled() -> bool:  # cancel once the child has started its own child
        return pids_file.exists() and pids_file.stat().st_size > 0

    t0 = time.perf_counter()
    with pytest.raises(runner.Cancelled, match="cancelled"):
        runner.run(fake_cli, ["segment"], is_cancelled=cancelled,
                   on_start=lambda pid: state.update(started=pid))
    assert time.perf_counter() - t0 < 20
    pid, grandchild = json.loads(pids_file.read_text())
    assert pid == state["started"]
    deadline = time.time() + 5
    while alive(grandchild) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid) and not alive(grandchild)


def test_child_env_drops_qgis_python_and_gdal_paths() -> None:
    env = runner.child_env({"PYTHONPATH": "/usr/share/qgis/python", "GDAL_DATA": "/x",
                            "PROJ_LIB": "/y", "HOME": "/h"})
    assert env == {"HOME": "/h", "PYTHONUNBUFFERED": "1"}


# --------------------------------------------------------------------------- finding the CLI
def test_configured_command_order(tmp_path, monkeypatch) -> None:
    exe = tmp_path / "bin" / "geofloodsam"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    env_file = tmp_path / "geofloodsam_env.json"
    monkeypatch.delenv("GEOFLOODSAM_EXECUTABLE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(runner.RunError, match="no geofloodsam environment configured"):
        runner.configured_command(None, env_file)
    env_file.write_text(json.dumps({"executable": str(exe), "python": sys.executable}))
    assert runner.configured_command(None, env_file) == [str(exe)]
    other = tmp_path / "other"
    other.write_text("")
    monkeypatch.setenv("GEOFLOODSAM_EXECUTABLE", str(other))
    assert runner.configured_command(None, env_file) == [str(other)]
    assert runner.configured_command(str(exe), env_file) == [str(exe)]  # the setting first
    with pytest.raises(runner.RunError, match="does not exist"):
        runner.configured_command(str(tmp_path / "gone"), env_file)


def test_recorded_env_without_script_uses_python_m(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GEOFLOODSAM_EXECUTABLE", raising=False)
    env_file = tmp_path / "geofloodsam_env.json"
    env_file.write_text(json.dumps({"executable": str(tmp_path / "gone"),
                                    "python": sys.executable}))
    assert runner.configured_command(None, env_file) == [sys.executable, "-m", "geofloodsam"]
    env_file.write_text(json.dumps({"python": str(tmp_path / "gone-too")}))
    with pytest.raises(runner.RunError, match="is gone"):
        runner.configured_command(None, env_file)
    env_file.write_text("{not json")
    with pytest.raises(runner.RunError, match="unreadable"):
        runner.configured_command(None, env_file)


# --------------------------------------------------------------------------- tasks
@pytest.fixture
def scene(tmp_path) -> Path:
    path = tmp_path / "in" / "river.tif"
    path.parent.mkdir()
    path.write_bytes(b"not read by the fake")
    return path


def test_segment_to_moves_the_outputs_to_the_chosen_paths(fake_cli, scene, tmp_path) -> None:
    mask, polys = tmp_path / "a" / "water.tif", tmp_path / "b" / "water.gpkg"
    messages = []
    with tasks.work_folder(mask) as work:
        paths = tasks.segment_to(fake_cli, scene, mask, polys, work, None,
                                 {"decoder": "flood", "bands": "", "tile_size": 512,
                                  "threshold": 0.4}, on_message=messages.append)
        assert work.name.startswith(".geofloodsam-qgis-") and work.parent == mask.parent
    assert not work.exists()
    assert f"river.tif: 1 km² of water -> {mask.parent}" in messages  # not the work folder
    assert paths == {"mask": str(mask), "style": str(mask.with_suffix(".qml")),
                     "polygons": str(polys)}
    assert mask.read_text().startswith("_mask.tif segment ")
    assert "--decoder flood --tile-size 512 --threshold 0.4" in mask.read_text()
    assert "--bands" not in mask.read_text()  # empty options are left out
    assert mask.with_suffix(".qml").read_text().startswith("_mask.qml")
    assert polys.read_text().startswith("_flood.gpkg")
    assert sorted(p.name for p in mask.parent.iterdir()) == ["water.qml", "water.tif"]


@pytest.mark.parametrize(
    ("mask", "polys", "message"),
    [
        ("m.png", "p.gpkg", "OUTPUT_MASK must be a .tif or .tiff file, got m.png"),
        ("m.tif", "p.shp", "OUTPUT_POLYGONS must be a .gpkg file, got p.shp"),
    ],
)
def test_segment_to_refuses_other_formats(fake_cli, scene, tmp_path, mask, polys,
                                          message) -> None:
    with pytest.raises(runner.RunError, match=message):
        tasks.segment_to(fake_cli, scene, tmp_path / mask, tmp_path / polys, tmp_path)


def test_segment_to_needs_a_raster_file(fake_cli, tmp_path) -> None:
    with pytest.raises(runner.RunError, match="INPUT .* is not a raster file on disk"):
        tasks.segment_to(fake_cli, tmp_path / "none.tif", tmp_path / "m.tif",
                         tmp_path / "p.gpkg", tmp_path)


def test_segment_to_leaves_nothing_when_the_cli_fails(fake_cli, scene, tmp_path,
                                                      monkeypatch) -> None:
    out = tmp_path / "out"
    for mode, message in (("error", "--threshold must be"), ("nothing", "wrote no")):
        monkeypatch.setenv("FAKE_MODE", mode)
        with pytest.raises(runner.RunError, match=message):
            with tasks.work_folder(out / "m.tif") as work:
                tasks.segment_to(fake_cli, scene, out / "m.tif", out / "p.gpkg", work)
        assert list(out.iterdir()) == []


def test_flood_to_moves_the_outputs_to_the_chosen_paths(fake_cli, scene, tmp_path) -> None:
    classes, polys = tmp_path / "a" / "classes.tif", tmp_path / "b" / "classes.gpkg"
    with tasks.work_folder(classes) as work:
        job = tasks.FloodJob(scene, classes, polys, before=scene,
                             options={"method": "index", "change": "auto", "decoder": ""},
                             allow_mixed_sensors=True)
        paths = tasks.flood_to(fake_cli, job, work)
    assert not work.exists()
    assert paths == {"classes": str(classes), "style": str(classes.with_suffix(".qml")),
                     "polygons": str(polys), "run": str(classes.with_name("classes_run.json"))}
    text = classes.read_text()
    assert text.startswith("_change.tif flood ") and f"--before {scene}" in text
    assert "--method index --change auto" in text and "--allow-mixed-sensors" in text
    assert "--decoder" not in text
    assert sorted(p.name for p in classes.parent.iterdir()) == [
        "classes.qml", "classes.tif", "classes_run.json"]


def test_flood_to_needs_before_or_reference(fake_cli, scene, tmp_path) -> None:
    with pytest.raises(runner.RunError, match="exactly one"):
        job = tasks.FloodJob(scene, tmp_path / "c.tif", tmp_path / "p.gpkg")
        tasks.flood_to(fake_cli, job, tmp_path)
    with pytest.raises(ValueError, match="unknown flood option"):
        tasks.flood_args(scene, tmp_path, scene, options={"tile": 3})


def test_unknown_segment_option_is_refused(scene, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown segment option 'tile'"):
        tasks.segment_args(scene, tmp_path, None, {"tile": 3})


def test_evaluate_to_returns_the_scores(fake_cli, scene, tmp_path) -> None:
    scores = tasks.evaluate_to(fake_cli, scene, scene, tmp_path / "report")
    assert scores == {"iou": 0.5, "dice": 0.6, "precision": 0.7, "recall": 0.8}
    with pytest.raises(runner.RunError, match="TRUTH .* is not a raster file on disk"):
        tasks.evaluate_to(fake_cli, scene, tmp_path / "none.tif", tmp_path / "report")


def test_work_folder_in_an_unwritable_place_is_a_run_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(runner.RunError, match="cannot write to"):
        with tasks.work_folder(blocker / "sub" / "m.tif"):
            pass


# --------------------------------------------------------------------------- the plugin files
def test_plugin_imports_only_stdlib_and_qgis() -> None:
    allowed = set(sys.stdlib_module_names) | {"qgis", "processing"}
    for path in PLUGIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_runner_and_tasks_import_no_qgis() -> None:
    for name in ("runner", "tasks"):
        tree = ast.parse((PLUGIN / f"{name}.py").read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and m.split(".")[0] in ("qgis", "processing") for m in modules)


def test_metadata_names_the_plugin_and_its_version() -> None:
    text = (PLUGIN / "metadata.txt").read_text()
    fields = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)
    assert fields["name"] == "geofloodsam" and fields["version"] == __version__
    assert fields["hasProcessingProvider"] == "yes"


# --------------------------------------------------------------------------- geofloodsam qgis
@pytest.fixture
def qgis_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("QGIS_CUSTOM_CONFIG_PATH", raising=False)
    return tmp_path / "home" / ".local" / "share" / "QGIS" / "QGIS3" / "profiles"


def test_install_and_uninstall(qgis_home) -> None:
    cli = CliRunner()
    ini = qgis_home / "work" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[General]\nlocale=\"de\"\n\n[PythonPlugins]\nother=true\ngeofloodsam=false\n"
                   "\n[Processing]\nConfiguration\\X=1\n")
    result = cli.invoke(main, ["qgis", "install", "--profile", "work"])
    assert result.exit_code == 0, result.output
    target = qgis_home / "work" / "python" / "plugins" / "geofloodsam"
    assert f"installed the QGIS plugin in {target}" in result.output
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [p.name for p in PLUGIN.glob("*.py")] + ["metadata.txt", "geofloodsam_env.json"])
    record = json.loads((target / "geofloodsam_env.json").read_text())
    assert record["python"] == str(Path(sys.executable).absolute())
    assert record["executable"] == str(Path(sys.executable).absolute().parent / "geofloodsam")
    assert Path(record["executable"]).is_file() and record["version"] == __version__
    assert ini.read_text() == ("[General]\nlocale=\"de\"\n\n[PythonPlugins]\ngeofloodsam=true\n"
                               "other=true\n\n[Processing]\nConfiguration\\X=1\n")
    (target / "stale.py").write_text("")
    assert cli.invoke(main, ["qgis", "install", "--profile", "work"]).exit_code == 0
    assert not (target / "stale.py").exists()  # an update replaces the whole plugin
    assert [p.name for p in target.parent.iterdir()] == ["geofloodsam"]  # no staging left
    result = cli.invoke(main, ["qgis", "uninstall", "--profile", "work"])
    assert result.exit_code == 0 and "removed" in result.output
    assert not target.exists()
    assert "geofloodsam" not in ini.read_text() and "other=true" in ini.read_text()
    result = cli.invoke(main, ["qgis", "uninstall", "--profile", "work"])
    assert result.exit_code == 0 and "was not installed" in result.output


def test_install_into_a_fresh_default_profile(qgis_home) -> None:
    result = CliRunner().invoke(main, ["qgis", "install"])
    assert result.exit_code == 0, result.output
    ini = qgis_home / "default" / "QGIS" / "QGIS3.ini"
    assert ini.read_text() == "[PythonPlugins]\ngeofloodsam=true\n"


def test_custom_config_path_is_honoured(qgis_home, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QGIS_CUSTOM_CONFIG_PATH", str(tmp_path / "cfg"))
    assert commands_qgis.plugin_dir("default") == (
        tmp_path / "cfg" / "profiles" / "default" / "python" / "plugins" / "geofloodsam")
    monkeypatch.delenv("QGIS_CUSTOM_CONFIG_PATH")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert commands_qgis.profiles_root() == tmp_path / "xdg" / "QGIS" / "QGIS3" / "profiles"


@pytest.mark.parametrize("profile", ["", "..", "a/b"])
def test_bad_profile_name_is_a_one_line_error(qgis_home, profile) -> None:
    result = CliRunner().invoke(main, ["qgis", "install", "--profile", profile])
    assert result.exit_code == 1
    expected = f"Error: --profile must be a QGIS profile name, got {profile!r}."
    assert result.output.strip() == expected


def test_unwritable_profile_folder_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("QGIS_CUSTOM_CONFIG_PATH", str(blocker))
    result = CliRunner().invoke(main, ["qgis", "install"])
    assert result.exit_code == 1 and result.output.startswith("Error: cannot write to the QGIS")
    assert len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- JSON progress
def test_json_progress_lines(capsys) -> None:
    progress.set_format("json")
    try:
        with progress.tqdm(total=2, desc="segment", unit="tile") as bar:
            bar.update(1)
            bar.total += 2
            bar.refresh()
            bar.update(2)
        with progress.tqdm(total=3, disable=True) as quiet:
            quiet.update(1)
    finally:
        progress.set_format("bar")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [json.loads(ln) for ln in err.splitlines() if ln]
    assert [(d["n"], d["total"]) for d in lines][:4] == [(0, 2), (1, 2), (1, 4), (3, 4)]
    assert {d["event"] for d in lines} == {"progress"} and lines[0]["desc"] == "segment"
    assert isinstance(progress.tqdm(total=1, disable=True), progress._tqdm.tqdm)
    with pytest.raises(ValueError, match="progress format"):
        progress.set_format("xml")


def test_cli_progress_format_json(tmp_path) -> None:
    truth = REPO / "sample_tiles" / "riverside_rgb_truth.tif"
    result = CliRunner().invoke(main, ["--progress-format", "json", "evaluate-raster",
                                       str(truth), str(truth), "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    events = [json.loads(ln) for ln in result.stderr.splitlines() if ln.startswith("{")]
    assert events and events[-1]["n"] == events[-1]["total"] > 0
    assert all(e["desc"] == "evaluating" for e in events)
    assert "IoU 1.000" in result.stdout
    assert progress.get_format() == "json"
    CliRunner().invoke(main, ["qgis", "--help"])
    assert progress.get_format() == "bar"  # every run sets it afresh


def test_menus_are_geofloodsams_choices_recorded_at_install(qgis_home, monkeypatch) -> None:
    """The plugin keeps no copy of the choices: install records the registry's."""
    from geofloodsam.raster.sensors import SAR_UNITS, SENSORS
    from geofloodsam.water.methods import METHOD_CHOICES

    expected = {"sensor": SENSORS.choices(), "method": METHOD_CHOICES, "sar_units": SAR_UNITS}
    assert {k: tuple(v) for k, v in commands_qgis.choices().items()} == expected
    printed = CliRunner().invoke(main, ["qgis", "choices"])
    assert printed.exit_code == 0 and json.loads(printed.output) == commands_qgis.choices()
    target = commands_qgis.install("menus")
    monkeypatch.setattr(tasks, "_menus", None)
    assert tasks.menu_choices(None, target / "geofloodsam_env.json") == expected
    assert tasks.menu_choices(None, Path("elsewhere")) == expected  # found once per session


def test_menus_asked_from_the_command_or_auto_only(tmp_path, monkeypatch) -> None:
    printed = {"sensor": ["auto", "s1"], "method": ["auto", "sam"], "sar_units": ["auto"]}
    script = tmp_path / "choices.py"
    script.write_text("import json, sys\nassert sys.argv[1:] == ['qgis', 'choices']\n"
                      f"print(json.dumps({printed!r}))\n")
    env_file = tmp_path / "geofloodsam_env.json"
    env_file.write_text(json.dumps({"python": sys.executable}))  # installed before choices
    assert tasks.recorded_choices(env_file) is None
    monkeypatch.setattr(tasks, "_menus", None)
    menus = tasks.menu_choices(lambda: [sys.executable, str(script)], env_file)
    assert menus == {k: tuple(v) for k, v in printed.items()}

    def no_command() -> list[str]:
        raise runner.RunError("no geofloodsam environment configured")

    for command in (no_command, lambda: [sys.executable, "-c", "print('not json')"]):
        monkeypatch.setattr(tasks, "_menus", None)
        assert tasks.menu_choices(command, env_file) == tasks.AUTO_ONLY


def test_segment_args_from_menu_choices() -> None:
    args = tasks.segment_args("s.tif", "out", None, {"sensor": "s1", "method": "index",
                                                       "decoder": ""})
    assert args == ["segment", "s.tif", "-o", "out", "--sensor", "s1", "--method", "index"]


@pytest.mark.parametrize("clicked_only", [False, True])
def test_segment_args_pass_the_clicked_only_switch(clicked_only: bool) -> None:
    args = tasks.segment_args("s.tif", "out", "p.gpkg", {"clicked_only": clicked_only})
    assert args == ["segment", "s.tif", "-o", "out", "--prompts", "p.gpkg"] + (
        ["--clicked-only"] if clicked_only else [])
