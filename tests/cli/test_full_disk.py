"""A full disk, for real: a small tmpfs is mounted, filled with a ballast file right before one
write of the run, and the run must end with one line naming the folder and the space, exit
status 1, nothing created and the earlier outputs untouched.

Every write path of ``segment`` is hit: the work folder, the tile store, the mask GeoTIFF,
the GeoPackage, ``run.json``, the ``.qml`` style, and the OpenVINO graph cache under
``GEOFLOODSAM_HOME`` on another file system than the outputs. Mounting needs root (CI runs
the suite as root); elsewhere these tests skip and the fault-injected full-disk test in
``tests/segmentation/test_outputs.py`` still runs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_stop_signals import _contents, _earlier_outputs, _scene, _segment_args

from geofloodsam.cli import main
from geofloodsam.segmentation import outputs, pipeline
from geofloodsam.tiles.store import TileStore


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Path:
    path.mkdir(parents=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = getattr(exc, "stderr", None) or exc
        pytest.skip(f"cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN; CI runs as "
                    f"root): {str(reason).strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a ballast file in ``folder`` until its file system has no byte left."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    return ballast


def filling_first(real, folder: Path):
    """``real``, made to fill ``folder``'s file system just before it runs (once)."""
    def wrapper(*args, **kwargs):
        if not (folder / "ballast").exists():
            fill(folder)
        return real(*args, **kwargs)
    return wrapper


#: write path -> (object, attribute) whose call fills the disk first
WRITES = {
    "work folder": (pipeline, "make_workdir"),
    "tile store": (TileStore, "update_crop"),
    "mask": (outputs, "write_blended"),
    "GeoPackage": (outputs, "write_gpkg"),
    "run.json": (outputs, "_executor_record"),  # run.json is written right after it
    "qml": (outputs, "write_mask_qml"),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_disk_that_fills_up_is_one_line_and_keeps_everything(
    tmp_path, monkeypatch, write: str
) -> None:
    scene = _scene(tmp_path / "s.tif")
    with _tmpfs(tmp_path / "fs", "8m") as fs:
        out = fs / "out"
        old = _earlier_outputs(out, "s")
        owner, name = WRITES[write]
        monkeypatch.setattr(owner, name, filling_first(getattr(owner, name), fs))
        result = CliRunner().invoke(main, _segment_args(scene, out, "--runtime", "torch"))
        assert (fs / "ballast").exists(), f"the run never reached the {write} write"
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, (result.output, result.exception)
        assert lines[0].startswith(f"Error: not enough space in {out} ("), lines[0]
        assert "this run needs up to about" in lines[0] and "MiB" in lines[0], lines[0]
        assert _contents(out) == old  # no work folder, no new file, earlier ones untouched
        assert sorted(p.name for p in fs.iterdir()) == ["ballast", "out"]


def test_a_disk_full_from_the_start_is_one_line(tmp_path) -> None:
    """The issue's case: 64 KiB, far less than a 600x500 scene's tile store."""
    scene = _scene(tmp_path / "s.tif")
    with _tmpfs(tmp_path / "fs", "64k") as fs:
        out = fs / "out"
        result = CliRunner().invoke(main, _segment_args(scene, out, "--runtime", "torch"))
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: not enough space in {out}")
        assert list(fs.iterdir()) == []  # the output folder it made is gone too


def test_a_full_openvino_cache_on_another_disk_is_one_line(tmp_path, monkeypatch) -> None:
    pytest.importorskip("openvino", reason="the OpenVINO graph cache needs the extra")
    from geofloodsam.model import openvino_runtime

    scene = _scene(tmp_path / "s.tif")
    out = tmp_path / "out"
    old = _earlier_outputs(out, "s")
    with _tmpfs(tmp_path / "fs", "256k") as fs:
        monkeypatch.setenv("GEOFLOODSAM_HOME", str(fs / "home"))
        monkeypatch.setattr(openvino_runtime, "_DIRECTORIES", {})
        result = CliRunner().invoke(main, _segment_args(scene, out, "--runtime", "openvino"))
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, (result.output, result.exception)
        assert lines[0].startswith(f"Error: not enough space in {fs / 'home' / 'openvino'}")
        assert "GEOFLOODSAM_HOME" in lines[0] and "--runtime torch" in lines[0]
        assert [p.name for p in (fs / "home" / "openvino").iterdir()] in ([], ["compiled"])
    assert _contents(out) == old


@pytest.mark.parametrize("write", ["write_csv", "plot_means"])
def test_evaluate_on_a_disk_that_fills_up_is_one_line(
    tmp_path, monkeypatch, write_chip_set, write: str
) -> None:
    from geofloodsam.evaluation import report

    data = write_chip_set(tmp_path / "chips", ("s1",))
    with _tmpfs(tmp_path / "fs", "4m") as fs:
        out = fs / "out"
        out.mkdir()
        (out / "metrics.csv").write_text("earlier")
        monkeypatch.setattr(report, write, filling_first(getattr(report, write), fs))
        result = CliRunner().invoke(main, [
            "evaluate", "--data", str(data / "S1Hand"), "--method", "index", "--examples", "0",
            "-q", "-o", str(out)])
        assert result.exit_code == 1, (result.output, result.exception)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: not enough space in {fs} ("), lines
        assert "of report files it wrote" in lines[0]
        assert _contents(out) == {"metrics.csv": b"earlier"}
        assert sorted(p.name for p in fs.iterdir()) == ["ballast", "out"]


def test_finetune_on_a_disk_that_fills_up_is_one_line(tmp_path, monkeypatch, write_photo_set):
    from geofloodsam.training import finetune

    data = write_photo_set(tmp_path / "ds", ["train", "train", "val", "test"])
    with _tmpfs(tmp_path / "fs", "4m") as fs:
        out = fs / "out"
        out.mkdir()
        (out / "decoder.pt").write_text("earlier")
        monkeypatch.setattr(finetune, "save_decoder", filling_first(finetune.save_decoder, fs))
        result = CliRunner().invoke(main, [
            "finetune", "--data", str(data), "--out", str(out / "decoder.pt"), "--model", "tiny",
            "--device", "cpu", "--runtime", "torch", "--epochs", "1", "-q"])
        assert result.exit_code == 1, (result.output, result.exception)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: not enough space in {out} ("), lines
        after = _contents(out)
        after.pop("decoder.pt.resume.pt", None)  # the finished epoch's state, for --resume
        assert after == {"decoder.pt": b"earlier"}
