"""benchmarks/whole_process.py and machine_load.py: real runs of the command, the load guard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import machine_load  # noqa: E402


@pytest.mark.parametrize(("load", "quiet"), [(1.5, True), (2.0, True), (2.5, False)])
def test_load_guard_warns_above_the_core_count(monkeypatch, capsys, load, quiet) -> None:
    monkeypatch.setattr(machine_load, "cores", lambda: 2)
    monkeypatch.setattr(machine_load, "load_average", lambda: load)
    assert machine_load.check_quiet("x") == (load, quiet)
    assert ("WARNING: load average" in capsys.readouterr().err) is not quiet


def test_interleaved_runs_of_the_index_path(tmp_path, write_chip_set) -> None:
    """Two variants of ``segment --method index`` on a synthetic chip, 2 rounds each."""
    chip = write_chip_set(tmp_path / "chips") / "S1Hand" / "Alpha_1_S1Hand.tif"
    out = tmp_path / "runs.json"
    run = subprocess.run(
        [sys.executable, str(BENCH / "whole_process.py"), "--scene", f"file:{chip}",
         "--repeats", "2", "--warmup", "0", "--variant", "a=--method index",
         "--variant", "b=--method index --min-area 1", "--workdir", str(tmp_path / "w"),
         "--json", str(out)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "first variant / b (per round): wall" in run.stdout
    result = json.loads(out.read_text())["results"][0]
    runs = result["runs"]
    assert [(r["round"], r["variant"]) for r in runs] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    for r in runs:
        assert r["wall_s"] > r["run_s"] > 0 and r["first_encode_s"] is None
        assert r["peak_rss_mb"] > 10 and r["resolved"] == "no model"
    assert result["variants"]["a"]["iou_vs_first_min"] == 1.0
