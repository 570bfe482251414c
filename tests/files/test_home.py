"""An unusable ``GEOFLOODSAM_HOME``: the commands fall back to a temporary folder with one
warning line naming it, as the README says, and leave the file in the way untouched."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from geofloodsam.cli import main
from geofloodsam.files import home

REPO = Path(__file__).resolve().parents[2]


def _blocked_home(tmp_path: Path) -> Path:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    return blocker / "home"


def test_a_home_under_a_file_falls_back_once_per_process(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(_blocked_home(tmp_path)))
    monkeypatch.setattr(home, "_FALLBACKS", {})
    first = home.usable_home_folder("splits", "split record folder")
    second = home.usable_home_folder("embeddings", "embedding cache")
    assert first.parent == second.parent and first.is_dir() and second.is_dir()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Warning: cannot use the split record folder")
    assert f"GEOFLOODSAM_HOME={tmp_path / 'a_file' / 'home'}" in err[0]
    assert "Not a directory" in err[0]


def test_evaluate_with_a_home_under_a_file_warns_and_runs(tmp_path, write_chip_set) -> None:
    data = write_chip_set(tmp_path / "chips", ("s1",))
    bad_home = _blocked_home(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "GEOFLOODSAM_HOME": str(bad_home),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "geofloodsam", "evaluate", "--data", str(data / "S1Hand"),
         "--method", "index", "--examples", "0", "-q", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Warning: cannot use the split record folder"), err
    assert "GEOFLOODSAM_HOME=" in err[0]
    fallback = Path(re.search(r"cache files in (\S+) and", err[0]).group(1))
    assert not fallback.exists()  # removed when the process ended
    assert (out / "metrics.csv").is_file()
    assert (tmp_path / "a_file").read_text() == "not a folder"


def test_finetune_with_a_home_under_a_file_warns_and_runs(
    tmp_path, write_photo_set, monkeypatch
) -> None:
    data = write_photo_set(tmp_path / "ds", ["train", "train", "val", "test"])
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(_blocked_home(tmp_path)))
    monkeypatch.setattr(home, "_FALLBACKS", {})
    out = tmp_path / "out" / "decoder.pt"
    result = CliRunner().invoke(main, [
        "finetune", "--data", str(data), "--out", str(out), "--model", "tiny", "--device", "cpu",
        "--runtime", "torch", "--epochs", "1", "-q",
    ])
    assert result.exit_code == 0, result.output
    warnings = [x for x in result.output.splitlines() if x.startswith("Warning:")]
    assert len(warnings) == 1 and "GEOFLOODSAM_HOME=" in warnings[0], result.output
    assert "Error" not in result.output and out.is_file()
