"""Leave-one-out cross-validation of the radar water split's settings on Sen1Floods11 chips.

Every data-fitted choice of the radar prior (:func:`geofloodsam.water.index.radar_prior`):
the polarisation (cross, co, both), the split method (Otsu, Kittler-Illingworth), the
despeckle box, the bimodal tile size and the minimum mapping unit (water regions under N px
dropped), is chosen on all chips but one and scored on the one left out, for every chip
(leave-one-chip-out) and for every region (leave-one-region-out: the two Spain chips go out
together). Inside a fold the setting with the best mean per-chip IoU over the training
chips that have water wins (ties: pooled IoU). The held-out figures are the honest ones;
the in-sample row of the shipped defaults is printed beside them, marked fitted.

Chips whose truth has no water are not in the mean IoU (their IoU is 0 for any false alarm):
their false-alarm area is printed instead. Chips without a valid label or image pixel are
skipped::

    python benchmarks/satellite_cv.py                 # ../shared/data/sen1floods11
    python benchmarks/satellite_cv.py --data DIR      # any S1Hand/ + LabelHand/ chip folder
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import rasterio

from geofloodsam.water.index import (
    DESPECKLE,
    MIN_AREA,
    RADAR_METHOD,
    RADAR_POLARISATION,
    TILE,
    radar_prior,
    small_regions,
)

REPO = Path(__file__).resolve().parents[1]
CHIPS = Path(os.environ.get("GEOFLOODSAM_SHARED", REPO.parent / "shared")) / "data" / "sen1floods11"
#: the grid searched in every fold
GRID = {
    "polarisation": ("cross", "co", "both"),
    "method": ("otsu", "ki"),
    "despeckle": (1, 3, 5),
    "tile": (128, 256),
    "min_area": (0, 16, 32, 64),
}
DEFAULT = (RADAR_POLARISATION, RADAR_METHOD, DESPECKLE, TILE, MIN_AREA)


def load_chips(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Chip -> (VV/VH dB (2, H, W), label (H, W) int: 1 water, 0 dry, -1 not scored)."""
    chips = {}
    for image in sorted((data / "S1Hand").glob("*.tif")):
        chip = image.stem.rsplit("_", 1)[0]
        with rasterio.open(image) as ds:
            db = ds.read().astype(np.float64)
        with rasterio.open(data / "LabelHand" / f"{chip}_LabelHand.tif") as ds:
            label = ds.read(1).astype(np.int16)
        label[~np.isfinite(db).all(axis=0)] = -1
        if (label >= 0).any():
            chips[chip] = (db, label)
        else:
            print(f"skipped {chip}: no valid label and image pixel")
    return chips


def counts(water: np.ndarray, label: np.ndarray) -> tuple[int, int, int]:
    """(TP, FP, FN) of a water mask against a label (-1 not scored)."""
    ok = label >= 0
    truth = label == 1
    return (int((water & truth).sum()), int((water & ~truth & ok).sum()),
            int((~water & truth).sum()))


def grid_counts(chips: dict) -> dict[tuple, dict[str, tuple[int, int, int]]]:
    """Setting -> chip -> (TP, FP, FN) for every setting of :data:`GRID`."""
    out: dict[tuple, dict] = {}
    for pol, method, despeckle, tile in itertools.product(
        GRID["polarisation"], GRID["method"], GRID["despeckle"], GRID["tile"]
    ):
        for chip, (db, label) in chips.items():
            prior = radar_prior({"co": db[0], "cross": db[1]}, pol, method, despeckle, tile,
                                min_area=0)
            water = prior.water()
            for area in GRID["min_area"]:
                kept = water & ~small_regions(water, area)
                out.setdefault((pol, method, despeckle, tile, area), {})[chip] = counts(
                    kept, label)
    return out


def iou(c: Iterable[int]) -> float | None:
    """IoU of (TP, FP, FN); None when the truth has no water."""
    tp, fp, fn = c
    return tp / (tp + fp + fn) if tp + fn else None


def summary(per_chip: dict[str, tuple[int, int, int]]) -> tuple[float, float]:
    """(mean IoU over chips with water, pooled IoU over all)."""
    ious = [i for i in map(iou, per_chip.values()) if i is not None]
    tp, fp, fn = np.sum(list(per_chip.values()), axis=0)
    return (float(np.mean(ious)) if ious else 0.0, float(tp / max(tp + fp + fn, 1)))


def cross_validate(table: dict, groups: dict[str, list[str]]) -> tuple[dict, dict]:
    """Leave each group out: (chip -> held-out counts, group -> the setting chosen)."""
    held, chosen = {}, {}
    for group, members in groups.items():
        train = [c for g, cs in groups.items() if g != group for c in cs]
        best = max(sorted(table), key=lambda s: summary({c: table[s][c] for c in train}))
        chosen[group] = best
        for chip in members:
            held[chip] = table[best][chip]
    return held, chosen


def report(name: str, per_chip: dict, chips: dict) -> None:
    """Print per-chip IoU / false-alarm area and the mean, median and pooled IoU."""
    ious = {c: iou(v) for c, v in per_chip.items()}
    wet = [v for v in ious.values() if v is not None]
    mean, pooled = summary(per_chip)
    print(f"\n{name}: mean IoU {mean:.3f}, median {np.median(wet):.3f}, pooled {pooled:.3f} "
          f"({len(wet)} chips with water)")
    for chip, value in ious.items():
        if value is None:
            scored = int((chips[chip][1] >= 0).sum())
            print(f"  {chip:22s} no water: false alarm {per_chip[chip][1] / scored:.2%}")
        else:
            print(f"  {chip:22s} IoU {value:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CHIPS))
    args = parser.parse_args(argv)
    chips = load_chips(Path(args.data))
    table = grid_counts(chips)
    label = "polarisation, method, despeckle, tile, min_area"
    for how, groups in (
        ("leave-one-chip-out", {c: [c] for c in chips}),
        ("leave-one-region-out", _regions(chips)),
    ):
        held, chosen = cross_validate(table, groups)
        report(f"{how} (held out)", held, chips)
        print(f"  chosen per fold ({label}):")
        for group, setting in chosen.items():
            print(f"    without {group}: {setting}")
    report(f"shipped defaults {DEFAULT} on every chip (in-sample, fitted)", table[DEFAULT],
           chips)
    return 0


def _regions(chips: dict) -> dict[str, list[str]]:
    regions: dict[str, list[str]] = {}
    for chip in chips:
        regions.setdefault(chip.split("_")[0], []).append(chip)
    return regions


if __name__ == "__main__":
    raise SystemExit(main())
