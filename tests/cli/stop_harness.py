"""Run ``geofloodsam`` with one function made to pause at its start, for the stop-signal tests.

``python stop_harness.py MODULE:ATTR[.METHOD] -- ARGS...`` wraps the target so that its first
call prints ``harness: paused in TARGET`` on stderr and sleeps (up to 120 s) before running the
real function; the test sends SIGINT or SIGTERM once it reads that line, so the signal lands
in a known phase of a real run (model load, OpenVINO compile, encode, decode, writing).
"""

from __future__ import annotations

import functools
import importlib
import sys
import time


def _pausing(real, target: str):
    state = {"paused": False}

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        if not state["paused"]:
            state["paused"] = True
            print(f"harness: paused in {target}", file=sys.stderr, flush=True)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                time.sleep(0.05)
        return real(*args, **kwargs)

    return wrapper


def main() -> None:
    target, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: stop_harness.py MODULE:ATTR[.METHOD] -- ARGS..."
    module_name, path = target.split(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    setattr(owner, name, _pausing(getattr(owner, name), target))
    from geofloodsam.cli import main as cli

    sys.argv = ["geofloodsam", *args]
    cli()


if __name__ == "__main__":
    main()
