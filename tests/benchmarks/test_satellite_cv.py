"""benchmarks/satellite_cv.py: the fold logic on hand-made counts, and the real chips."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cv():
    spec = importlib.util.spec_from_file_location("satellite_cv",
                                                  REPO / "benchmarks" / "satellite_cv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_leaves_dry_chips_out_of_the_mean(cv):
    per_chip = {"a": (1, 1, 0), "b": (1, 0, 3), "dry": (0, 4, 0)}  # IoU 1/2, 1/4, no water
    mean, pooled = cv.summary(per_chip)
    assert mean == pytest.approx(0.375) and pooled == pytest.approx(2 / 10)
    assert cv.iou((0, 4, 0)) is None


def test_each_fold_chooses_without_the_chip_it_scores(cv):
    """Setting x is best on chip a only, y on b and c: held out, a gets y's counts and b, c
    get y's too (chosen on the others), so the in-sample favourite of a never scores a."""
    table = {
        "x": {"a": (9, 0, 1), "b": (1, 5, 5), "c": (1, 5, 5)},
        "y": {"a": (2, 4, 4), "b": (8, 1, 1), "c": (8, 1, 1)},
    }
    held, chosen = cv.cross_validate(table, {c: [c] for c in "abc"})
    assert chosen == {"a": "y", "b": "y", "c": "y"}
    assert held == {"a": (2, 4, 4), "b": (8, 1, 1), "c": (8, 1, 1)}


@pytest.mark.slow
def test_the_documented_figures(cv, shared_data, capsys):
    cv.main(["--data", str(shared_data / "sen1floods11")])
    out = capsys.readouterr().out
    assert "leave-one-chip-out (held out): mean IoU 0.508, median 0.542, pooled 0.822" in out
