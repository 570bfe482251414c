"""`geofloodsam segment CHIP.tif` on every shared Sen1Floods11 chip, scored against its label.

Runs the real command (a fresh process per chip, no option but ``-o``, ``--checkpoint`` and
``--method``) on the S1 and S2 chips of ``../shared/data/sen1floods11`` and prints per chip
its IoU against ``LabelHand`` (label -1 and image nodata excluded), then the pooled and mean
IoU per sensor (the mean and median over the chips whose truth has water; the others'
false-alarm area apart). A chip ``segment`` refuses (Paraguay_34417: radar all NaN) is
listed with its one-line error; a chip whose label has no valid pixel (Ghana_83483) is not scored::

    python benchmarks/segment_chips.py --checkpoint ../shared/models/mobile_sam.pt --method auto
    python benchmarks/segment_chips.py --method index          # the water index alone
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from geofloodsam.evaluation.metrics import Confusion, confusion

REPO = Path(__file__).resolve().parents[1]
CHIPS = Path(os.environ.get("GEOFLOODSAM_SHARED", REPO.parent / "shared")) / "data" / "sen1floods11"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO.parent / "shared/models/mobile_sam.pt"))
    parser.add_argument("--method", default="auto")
    parser.add_argument("--data", default=str(CHIPS))
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="more segment options, e.g. --extra --tile-size 256")
    args = parser.parse_args(argv)
    exe = Path(sys.executable).with_name("geofloodsam")
    data = Path(args.data)
    pooled: dict[str, Confusion] = {}
    ious: dict[str, list[float]] = {}
    dry: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as out:
        for image in sorted(data.glob("S1Hand/*.tif")) + sorted(data.glob("S2Hand/*.tif")):
            chip, kind = image.stem.rsplit("_", 1)
            run = subprocess.run(
                [str(exe), "segment", str(image), "-o", out, "--method", args.method,
                 "--checkpoint", args.checkpoint, "-q", *args.extra],
                capture_output=True, text=True,
            )
            if run.returncode:
                print(f"{image.stem:32s} refused: {run.stderr.strip().splitlines()[-1]}")
                continue
            with rasterio.open(Path(out) / f"{image.stem}_mask.tif") as ds:
                mask = ds.read(1)
            with rasterio.open(data / "LabelHand" / f"{chip}_LabelHand.tif") as ds:
                label = ds.read(1)
            valid = (label != -1) & (mask != 255)
            if not valid.any():
                print(f"{image.stem:32s} not scored: no valid label pixel")
                continue
            c = confusion(mask == 1, label == 1, valid)
            pooled[kind] = pooled[kind] + c if kind in pooled else c
            if c.tp + c.fn == 0:  # no water in the truth: a false-alarm area, not an IoU 0
                dry.setdefault(kind, []).append(c.fp / max(c.fp + c.tn, 1))
                print(f"{image.stem:32s} no water: false alarm {dry[kind][-1]:.2%}")
                continue
            iou = c.scores()["iou"]
            ious.setdefault(kind, []).append(iou)
            print(f"{image.stem:32s} IoU {iou:.3f}")
    for kind, c in pooled.items():
        wet = ious.get(kind, [])
        print(f"{kind}: pooled IoU {c.scores()['iou']:.3f}, mean IoU {np.mean(wet):.3f}, "
              f"median {np.median(wet):.3f} over {len(wet)} chips with water; "
              f"{len(dry.get(kind, []))} without water, mean false alarm "
              f"{np.mean(dry.get(kind, [0.0])):.2%} (--method {args.method})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
