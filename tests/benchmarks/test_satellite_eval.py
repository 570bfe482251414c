"""benchmarks/satellite_eval.py: chip loading (skips) and the summary tables."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "satellite_eval", Path(__file__).resolve().parents[2] / "benchmarks" / "satellite_eval.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["satellite_eval"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_tables(bench):
    per_chip = [
        {"group": "s1", "chip": c, "method": m, "iou": v}
        for c, m, v in [("a", "index", 0.5), ("b", "index", 0.9), ("a", "x", 0.6),
                        ("b", "x", 0.89), ("a", "y", 0.9), ("b", "y", 0.5)]
    ]
    summary = [
        {"group": "s1", "method": m, "pooled_iou": p, "mean_iou": p, "n": 2,
         "precision": 1.0, "recall": 1.0}
        for m, p in [("index", 0.7), ("x", 0.72), ("y", 0.75)]
    ]
    text = bench.markdown(summary, per_chip)
    assert "| x | 0.720 | 0.720 |" in text
    ok = bench.admissible(summary, per_chip)
    assert "x 0.720" in ok and "y 0.750" not in ok  # y loses 0.4 on chip b


def test_skips_unusable_chips(bench, shared):
    root = shared("data/sen1floods11")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = bench.load_items(root.parent, None)
    names = {i.name for i in items if i.group == "s1"}
    assert "Ghana_83483" not in names and "Paraguay_34417" not in names
    assert "Nigeria_812045" in names
    messages = " ".join(str(w.message) for w in caught)
    assert "Ghana_83483" in messages and "all nodata" in messages
