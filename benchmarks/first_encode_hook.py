"""Run the ``geofloodsam`` command line, noting when the first tile's encode starts.

``python benchmarks/first_encode_hook.py segment ...`` is ``geofloodsam segment ...`` with
one addition: when ``geofloodsam.model.sam`` is first imported, ``SamModel.encode_batch`` is
wrapped so that its first call writes ``time.time()`` to the file named by
``GEOFLOODSAM_BENCH_FIRST_ENCODE``. Nothing else changes (no module is imported earlier
than the command itself imports it), so the process is the command's own.
When the command returns, ``time.time()`` is written to ``GEOFLOODSAM_BENCH_DONE`` (the
rest of the process is the interpreter's exit). ``whole_process.py`` subtracts the time it
started the process, and takes the end of the exit from the process's end.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time

TARGET = "geofloodsam.model.sam"


def _wrap(module) -> None:
    model_class = module.SamModel
    encode_batch = model_class.encode_batch

    def first_noted(self, images):
        path = os.environ.get("GEOFLOODSAM_BENCH_FIRST_ENCODE")
        if path and not getattr(first_noted, "seen", False):
            first_noted.seen = True
            with open(path, "w") as f:
                f.write(repr(time.time()))
        return encode_batch(self, images)

    model_class.encode_batch = first_noted


class _Hook(importlib.abc.MetaPathFinder):
    """Wraps the model module right after it is executed, then steps aside."""

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _wrap(module)

        spec.loader.exec_module = exec_module
        return spec


if __name__ == "__main__":
    sys.meta_path.insert(0, _Hook())
    from geofloodsam.cli import main

    try:
        main(sys.argv[1:], prog_name="geofloodsam")
    finally:
        if os.environ.get("GEOFLOODSAM_BENCH_DONE"):
            with open(os.environ["GEOFLOODSAM_BENCH_DONE"], "w") as f:
                f.write(repr(time.time()))
