"""Loading a model and its first encodes, in fresh processes, interleaved across source trees.

The fixed cost a run pays before its tiles flow: ``load_model`` (torch building the model,
the decoder or adapted-model file, the OpenVINO graph compiled from its cache) and the first
two encodes of a 1024² tile (the first also pays what the runtime does lazily). Each
*variant* is ``LABEL=TREE``: a source tree whose ``geofloodsam`` is put first on
``PYTHONPATH`` (the child runs in a temporary folder, so an editable install of another
tree does not shadow it). Rounds run every variant once, the order reversed every other
round; printed per variant: median [min-max] seconds of the import of torch, the load, the
first and the second encode and the whole child, then the per-round ratios to the first
variant, with the load average (``machine_load.py``):

    python benchmarks/model_load.py --decoder satellite --rounds 4 \\
        --variant "before=../before" --variant "after=."
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine_load import check_quiet, cores, load_average  # noqa: E402

#: the child: one line of JSON with the phases' seconds
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
t1 = time.perf_counter()
from geofloodsam.model.sam import load_model
model = load_model(sys.argv[1], decoder=sys.argv[2], precision=sys.argv[3], runtime=sys.argv[4])
t2 = time.perf_counter()
tile = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
model.encode_batch([tile])
t3 = time.perf_counter()
model.encode_batch([tile])
t4 = time.perf_counter()
print(json.dumps({"import torch": t1 - t0, "load": t2 - t1, "first encode": t3 - t2,
                  "second encode": t4 - t3, "whole": t4 - t0, "runtime": model.runtime}))
"""
PHASES = ("import torch", "load", "first encode", "second encode", "whole")


def run_child(tree: Path, args: argparse.Namespace, workdir: Path) -> dict:
    """One fresh process of the child on ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, args.model, args.decoder, args.precision, args.runtime],
        cwd=workdir, env=env, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the child on {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True,
                        help="LABEL=TREE (repeatable; the first is the base of the ratios)")
    parser.add_argument("--model", default="vit_t")
    parser.add_argument("--decoder", default="satellite")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1, help="rounds not counted (caches)")
    args = parser.parse_args()
    variants = [(label, Path(tree).resolve()) for label, tree in
                (v.split("=", 1) for v in args.variant)]
    results: dict[str, list[dict]] = {label: [] for label, _ in variants}
    loads: list[float] = []
    print(f"{cores()} cores; load average at start {load_average():.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.warmup + args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for label, tree in order:
                load, _ = check_quiet(f"{label}, round {r + 1}")
                record = run_child(tree, args, Path(tmp))
                if r >= args.warmup:
                    results[label].append(record)
                    loads.append(load)
    print(f"{args.model} + {args.decoder}, --precision {args.precision} --runtime "
          f"{args.runtime}; {args.rounds} interleaved rounds after {args.warmup} warm-up, load "
          f"average {min(loads):.2f}-{max(loads):.2f} (seconds, median [min-max]):")
    base = variants[0][0]
    for label, _ in variants:
        rows = results[label]
        print(f"  {label} ({rows[0]['runtime']}): " + "   ".join(
            f"{phase} {spread([row[phase] for row in rows])}" for phase in PHASES))
        if label != base:
            ratios = [b["whole"] / a["whole"] for a, b in zip(rows, results[base], strict=True)]
            print(f"    {base} / {label}, whole child per round: {spread(ratios)}x")


if __name__ == "__main__":
    main()
