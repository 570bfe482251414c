"""benchmarks/int8_encoder.py: the per-round ratios it prints, and the int8 graph it
measures is the one ``--precision int8`` makes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import int8_encoder  # noqa: E402


def test_ratios_are_per_round_medians() -> None:
    rounds = [{"torch-fp32": 2.0, "openvino-fp32": 1.0, "int8-weights": 0.5},
              {"torch-fp32": 3.0, "openvino-fp32": 1.5, "int8-weights": 1.0},
              {"torch-fp32": 2.4, "openvino-fp32": 1.2, "int8-weights": 0.8}]
    lines = int8_encoder.speed_report({"per_round": rounds},
                                      ["torch-fp32", "openvino-fp32", "int8-weights"])
    row = next(line for line in lines if line.startswith("int8-weights"))
    # vs OpenVINO fp32: 2.0, 1.5, 1.5 -> median 1.50 [1.50-2.00]; vs torch: 4, 3, 3
    assert "1.50 [1.50-2.00]x" in row and "3.00 [3.00-4.00]x" in row
    assert int8_encoder.spread([3.0, 1.0, 2.0]) == "2.00 [1.00-3.00]"


def test_variants_named_and_the_shipped_one_is_the_library_recipe() -> None:
    assert list(int8_encoder.VARIANTS) == [
        "int8-weights", "int8-weights-all", "int8-ptq", "int8-ptq-transformer"]
    # None: made by geofloodsam.model.openvino_int8.compress_weights, not a copy of it
    assert int8_encoder.VARIANTS["int8-weights"][2] is None
    calibrated = {name for name, (_, needs, _) in int8_encoder.VARIANTS.items() if needs}
    assert calibrated == {"int8-ptq", "int8-ptq-transformer"}


@pytest.mark.parametrize("scenes, sizes", [(["demo"], []), ([], [64])])
def test_scene_list(tmp_path, scenes, sizes) -> None:
    import argparse

    args = argparse.Namespace(scenes=scenes, sizes=sizes, promptless_sizes=[])
    listed = int8_encoder.scene_list(args, tmp_path)
    assert len(listed) == len(scenes) + len(sizes)
    for _, scene, prompts, _ in listed:
        assert scene.is_file() and prompts is not None and prompts.is_file()
