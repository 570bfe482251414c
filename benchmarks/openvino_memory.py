"""Where the OpenVINO path's memory goes, against torch: one process per runtime.

For ``--runtime torch`` and ``openvino`` (each in a fresh process): RSS and its high-water
mark (``/proc/self/status``) after loading MobileSAM with the decoder-only flood model, after
encoding one 1024² tile of the README demo, then after one decoder call of N point prompts
for each ``--prompts`` N (the decoder runs in torch on both runtimes; OpenVINO runs the
encoder only).

    python benchmarks/openvino_memory.py --checkpoint ../shared/models/mobile_sam.pt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "sample_tiles" / "riverside_rgb.tif"


def memory() -> str:
    """``RSS MB (high-water MB)`` of this process."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            found[line.split(":")[0]] = int(line.split()[1]) // 1024
    return f"{found['VmRSS']} MB ({found['VmHWM']} MB)"


def tile():
    """A 1024² RGB tile of the README demo (rows 0-1024, columns 1000-2024)."""
    import rasterio

    with rasterio.open(DEMO) as ds:
        return ds.read(window=((0, 1024), (1000, 2024))).transpose(1, 2, 0).copy()


def child(args: argparse.Namespace) -> None:
    from geofloodsam.model.sam import load_model

    model = load_model("vit_t", checkpoint=args.checkpoint, decoder="flood-decoder-only",
                       precision="fp32", runtime=args.child)
    print(f"{args.child}: loaded: {memory()}")
    emb = model.encode_batch([tile()])[0]
    print(f"{args.child}: one encode: {memory()}")
    for n in args.prompts:
        points = [[[100.5 + 50 * k, 100.5]] for k in range(n)]
        model.decode(emb, points=points, point_labels=[[1]] * n).best_logits()
        print(f"{args.child}: decode of {n} prompts in one call: {memory()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--prompts", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for runtime in ("torch", "openvino"):
        cmd = [sys.executable, __file__, "--child", runtime, "--prompts",
               *map(str, args.prompts)]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
