"""benchmarks/model_load.py: fresh processes on two source trees, interleaved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_interleaved_loads_of_two_trees(tmp_path) -> None:
    """The tiny model loaded and encoding in fresh processes, each variant's tree first on
    the path (here both this tree, under two labels)."""
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "model_load.py"), "--model", "tiny",
         "--decoder", "pretrained", "--runtime", "torch", "--precision", "fp32",
         "--rounds", "2", "--warmup", "0", "--variant", f"a={REPO}", "--variant", f"b={REPO}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert any(line.startswith("  a (torch): import torch") for line in lines)
    assert any(line.startswith("  b (torch): import torch") for line in lines)
    assert any("a / b, whole child per round:" in line for line in lines)
    assert "2 interleaved rounds after 0 warm-up" in run.stdout


def test_a_failing_child_is_reported(tmp_path) -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "model_load.py"), "--model", "no-such",
         "--runtime", "torch", "--rounds", "1", "--warmup", "0", "--variant", f"a={REPO}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert run.returncode != 0
    assert "the child on" in run.stderr and "failed" in run.stderr
