"""Ctrl-C (SIGINT) and SIGTERM stop every command alike, in any phase of its run.

Each test starts a real ``geofloodsam`` process through ``stop_harness.py``, which pauses it at
the start of one named function (model load, OpenVINO compile, encode, decode, writing the
outputs, renaming them into place) and says so on stderr; the test then sends the signal and
checks: one line naming the signal, exit status 130 (SIGINT) or 143 (SIGTERM), no traceback,
nothing created in the output folder, and the earlier outputs there byte for byte as they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("stop_harness.py")
#: phase -> the function the harness pauses at the start of
PHASES = {
    "load": "geofloodsam.model.sam:load_model",
    "compile": "geofloodsam.model.openvino_runtime:_OpenVinoGraph._compile",
    "encode": "geofloodsam.model.sam:SamModel.run_encoder",
    "decode": "geofloodsam.model.sam:SamModel.decode",
    "write": "geofloodsam.segmentation.outputs:write_gpkg",
    "rename": "geofloodsam.segmentation.outputs:replace_all",
}
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
FIRST_WORDS = {signal.SIGINT: "Error: interrupted (SIGINT, Ctrl-C)",
               signal.SIGTERM: "Error: terminated (SIGTERM)"}


def _scene(path: Path, w: int = 600, h: int = 500) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    water = ((xx - w / 2) / (w / 3)) ** 2 + ((yy - h / 2) / (h / 3)) ** 2 < 1
    rng = np.random.default_rng(0)
    data = np.where(water, 30, 150)[None].repeat(3, 0) + rng.integers(0, 40, (3, h, w))
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(data.astype(np.uint8))
    return path


def _earlier_outputs(out: Path, stem: str) -> dict[str, bytes]:
    out.mkdir(parents=True, exist_ok=True)
    old = {f"{stem}{s}": f"earlier {s}".encode() for s in
           ("_mask.tif", "_mask.qml", "_flood.gpkg", "_run.json")}
    for name, data in old.items():
        (out / name).write_bytes(data)
    return old


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden work folders included), with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def stop_at(target: str, signum: int, args: list[str], home: Path) -> tuple[int, str]:
    """Run ``geofloodsam ARGS`` paused at ``target``, send ``signum`` there; (status, stderr)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GEOFLOODSAM_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HARNESS), target, "--", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env)
    lines = []
    deadline = time.monotonic() + 240  # a loaded 2-core machine imports torch slowly
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("harness: paused in"):
                break
            assert time.monotonic() < deadline, "the run never reached " + target
        else:
            pytest.fail(f"the run ended before {target}: {''.join(lines)}")
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines[1:]) + rest


def check_stopped(status: int, err: str, signum: int) -> None:
    """One line naming the signal, the signal's exit status, no traceback."""
    assert status == STATUS[signum], err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(FIRST_WORDS[signum]), err
    assert "Traceback" not in err


def _segment_args(scene: Path, out: Path, *extra: str) -> list[str]:
    return ["segment", str(scene), "-o", str(out), "--model", "tiny", "--device", "cpu",
            "--tile-size", "256", "--overlap", "64", "--quiet", *extra]


def _stop_segment(tmp_path: Path, phase: str, signum: int) -> None:
    scene = _scene(tmp_path / "s.tif")
    out = tmp_path / "out"
    old = _earlier_outputs(out, "s")
    runtime = "openvino" if phase == "compile" else "torch"
    status, err = stop_at(PHASES[phase], signum,
                          _segment_args(scene, out, "--runtime", runtime), tmp_path / "home")
    check_stopped(status, err, signum)
    assert _contents(out) == old  # nothing created, nothing replaced, no work folder left
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ctrl_c_while_encoding_stops_segment_and_keeps_the_earlier_outputs(tmp_path) -> None:
    _stop_segment(tmp_path, "encode", signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_a_stop_signal_in_each_phase_of_segment(tmp_path, phase: str, signum: int) -> None:
    if phase == "compile":
        pytest.importorskip("openvino", reason="the OpenVINO compile phase needs the extra")
    _stop_segment(tmp_path, phase, signum)


def test_a_stop_signal_swallowed_by_native_code_still_stops_the_run(tmp_path, monkeypatch) -> None:
    """A signal whose exception is lost (raised inside a callback of native code that ignores
    it) is still acted on at the next tile: the run never goes on to replace the outputs."""
    from click.testing import CliRunner

    from geofloodsam.cli import main
    from geofloodsam.segmentation import pipeline

    scene = _scene(tmp_path / "s.tif")
    out = tmp_path / "out"
    old = _earlier_outputs(out, "s")
    real, calls = pipeline.run_tile_chunk, []

    def swallowing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler runs here; its exception is then swallowed
            except BaseException:  # noqa: BLE001 - what a careless callback does
                pass
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_tile_chunk", swallowing)
    before = signal.getsignal(signal.SIGINT)
    result = CliRunner().invoke(main, _segment_args(scene, out, "--runtime", "torch"))
    assert result.exit_code == 130, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(FIRST_WORDS[signal.SIGINT]), result.output
    assert _contents(out) == old and len(calls) == 1
    assert signal.getsignal(signal.SIGINT) == before


def _finetune_args(data: Path, out: Path) -> list[str]:
    return ["finetune", "--data", str(data), "--out", str(out / "decoder.pt"), "--model", "tiny",
            "--device", "cpu", "--runtime", "torch", "--epochs", "2", "-q"]


def _evaluate_args(data: Path, out: Path) -> list[str]:
    return ["evaluate", "--data", str(data), "--model", "tiny", "--device", "cpu",
            "--runtime", "torch", "--decoder", "pretrained", "--examples", "0", "-q",
            "-o", str(out)]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(("command", "phase"), [
    ("evaluate", "geofloodsam.model.sam:SamModel.run_encoder"),
    ("evaluate", "geofloodsam.evaluation.report:replace_all"),
    ("finetune", "geofloodsam.model.sam:SamModel.run_encoder"),
    ("finetune", "geofloodsam.training.finetune:save_decoder"),
])
def test_a_stop_signal_stops_evaluate_and_finetune(
    tmp_path, write_photo_set, command: str, phase: str, signum: int
) -> None:
    data = write_photo_set(tmp_path / "ds", ["train", "train", "val", "test"])
    out = tmp_path / "out"
    old = {"metrics.csv": b"earlier", "decoder.pt": b"earlier", "curves.csv": b"earlier"}
    out.mkdir()
    for name, data_ in old.items():
        (out / name).write_bytes(data_)
    args = (_evaluate_args if command == "evaluate" else _finetune_args)(data, out)
    status, err = stop_at(phase, signum, args, tmp_path / "home")
    check_stopped(status, err, signum)
    after = _contents(out)
    after.pop("decoder.pt.resume.pt", None)  # finetune's state after a finished epoch, by design
    assert after == old
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_a_local_dask_run_quietly(tmp_path) -> None:
    """A terminal's Ctrl-C reaches every process of the group, Dask's workers too: they leave
    stopping to the command (no KeyboardInterrupt tracebacks of their own)."""
    pytest.importorskip("distributed", reason="--workers needs the Dask extra")
    scene = _scene(tmp_path / "s.tif")
    out = tmp_path / "out"
    old = _earlier_outputs(out, "s")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GEOFLOODSAM_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    args = ["--progress-format", "json", *_segment_args(scene, out, "--runtime", "torch",
                                                        "--workers", "2")]
    args.remove("--quiet")
    proc = subprocess.Popen([sys.executable, "-m", "geofloodsam", *args], env=env, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        for line in proc.stderr:  # the first tile came back from a worker
            if '"n": 1' in line:
                break
        else:
            pytest.fail("the run ended before its first tile")
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    messages = [x for x in err.splitlines() if x.strip() and not x.startswith('{"event"')]
    check_stopped(proc.returncode, "\n".join(messages), signal.SIGINT)
    assert _contents(out) == old


_AFTER_OPENVINO = """
import gc, os, signal, sys, time
import numpy as np
from geofloodsam.errors import Interrupted, catching_stop_signals
from geofloodsam.model.sam import load_model

model = load_model("tiny", device="cpu", runtime="openvino")
model.encode(np.zeros((64, 64, 3), np.uint8))
del model
gc.collect()
try:
    with catching_stop_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
except Interrupted as stop:
    sys.exit(stop.code)
"""


@pytest.mark.slow
def test_ctrl_c_after_openvino_freed_its_signal_stack_does_not_crash(tmp_path) -> None:
    """OpenVINO gives the main thread an alternate signal stack and frees it with its last
    object: a later Ctrl-C ran its handler there and crashed (SIGSEGV)."""
    pytest.importorskip("openvino", reason="needs the OpenVINO extra")
    env = {**os.environ, "GEOFLOODSAM_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _AFTER_OPENVINO], env=env, timeout=300,
                          capture_output=True, text=True)
    assert proc.returncode == 130, (proc.returncode, proc.stderr[-2000:])
