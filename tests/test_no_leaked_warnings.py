"""No Python warning of ours leaks to the terminal on bad input: the suite's bad-input and
fault tests run again with every warning raised in a ``geofloodsam`` module made an error.

A leaked warning (``RuntimeWarning: overflow ...`` from a stretch, ``ComplexWarning`` from a
cast) prints a source line around our one-line message; made an error, it breaks that one
line and fails the test that fed the input. Warnings of other packages are left as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the test files that feed bad input or faults through the commands and the library
BAD_INPUT_FILES = [
    "tests/segmentation/test_pipeline.py",
    "tests/segmentation/test_plan.py",
    "tests/segmentation/test_outputs.py",
    "tests/segmentation/test_sensors_and_methods.py",
    "tests/segmentation/test_many_scenes.py",
    "tests/evaluation",
    "tests/cli/test_evaluate_command.py",
    "tests/cli/test_full_disk.py",
    "tests/raster",
    "tests/vector/test_prompts.py",
    "tests/model/test_embedding_cache.py",
    "tests/training/test_finetune.py",
    "tests/files",
    "tests/datasets",
]
#: the bad-input and fault tests among them, by name
BAD_INPUT_TESTS = (
    "one_line or bad_input or bad_runs or refused or unusable or fill or data_type or error"
)


@pytest.mark.slow
def test_bad_input_tests_pass_with_our_warnings_as_errors() -> None:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-o", "filterwarnings=error::Warning:geofloodsam", "-k", BAD_INPUT_TESTS,
         *BAD_INPUT_FILES],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
