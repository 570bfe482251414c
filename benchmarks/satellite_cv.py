"""Leave-one-out cross-validation of the radar water split's settings on Sen1Floods11 chips.

Every data-fitted choice of the radar prior (:func:`geofloodsam.water.index.radar_prior`):
the polarisation (cross, co, both), the split method (Otsu, Kittler-Illingworth), the
despeckle box, the bimodal tile size and the minimum mapping unit (water regions under N px
dropped), and with ``--search-ashman`` the bimodality test (the minimum Ashman's D of a
tile's two-Gaussian fit, else the literature's 2), is chosen on all chips but one and scored
on the one left out: every chip (leave-one-chip-out) and every region (leave-one-region-out:
the two Spain chips go out together). Inside a fold the setting with the best mean per-chip
IoU over the training chips that have water wins (ties: pooled IoU). The held-out figures
are the honest ones; the in-sample row of the shipped defaults is printed beside them,
marked fitted.

With ``--checkpoint``, the fusion is cross-validated the same way: the guarded gate
(:func:`geofloodsam.water.fusion.guarded_gate`) of SAM's promptless mask (MobileSAM, the
``--decoder``, on the chip's composite) with the default prior, over its confidence margin
and agreement level, against the index alone as one more candidate. ``auto`` uses SAM for
radar only if the held-out fused mean IoU beats the held-out index alone.

Chips whose truth has no water are not in the mean IoU (their IoU is 0 for any false alarm):
their false-alarm area is printed instead. Chips without a valid label or image pixel are
skipped::

    python benchmarks/satellite_cv.py                 # ../shared/data/sen1floods11
    python benchmarks/satellite_cv.py --data DIR      # any S1Hand/ + LabelHand/ chip folder
    python benchmarks/satellite_cv.py --search-ashman # the bimodality test searched too
    python benchmarks/satellite_cv.py --checkpoint ../shared/models/mobile_sam.pt  # + fusion
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
    MIN_ASHMAN,
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
    "min_ashman": (MIN_ASHMAN,),  # the literature's D >= 2; --search-ashman: (1.5, 2, 2.5)
    "min_area": (0, 16, 32, 64, 128, 256),
}
DEFAULT = (RADAR_POLARISATION, RADAR_METHOD, DESPECKLE, TILE, MIN_ASHMAN, MIN_AREA)
#: the guarded gate's grid: (confidence margin in widths, minimum agreement)
FUSION_GRID = tuple(itertools.product((1.0, 2.0, 3.0), (0.8, 0.9, 0.95)))


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
    for pol, method, despeckle, tile, ashman in itertools.product(
        GRID["polarisation"], GRID["method"], GRID["despeckle"], GRID["tile"],
        GRID["min_ashman"],
    ):
        for chip, (db, label) in chips.items():
            prior = radar_prior({"co": db[0], "cross": db[1]}, pol, method, despeckle, tile,
                                min_area=0, min_ashman=ashman)
            water = prior.water()
            for area in GRID["min_area"]:
                kept = water & ~small_regions(water, area)
                out.setdefault((pol, method, despeckle, tile, ashman, area), {})[chip] = counts(
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


def fusion_counts(chips: dict, data: Path, checkpoint: str, decoder: str) -> dict:
    """Candidate -> chip -> counts: ``index`` and ``gate m=.. a=..`` for :data:`FUSION_GRID`."""
    from geofloodsam.model.decoders import load_decoders, use_decoder
    from geofloodsam.model.logits import sigmoid
    from geofloodsam.model.sam import load_model
    from geofloodsam.raster.sensors import detect_sensor, read_composite
    from geofloodsam.water import fusion
    from geofloodsam.water.scene_prior import scene_prior

    model = load_model(  # the reference encoder path (fp32, torch)
        "vit_t", checkpoint=checkpoint, decoder="pretrained", device="cpu",
        precision="fp32", runtime="torch",
    )
    (dec,) = load_decoders(model, [decoder])
    out: dict[str, dict] = {}
    for chip, (_, label) in chips.items():
        with rasterio.open(data / "S1Hand" / f"{chip}_S1Hand.tif") as ds:
            info = detect_sensor(ds)
            prior = scene_prior(ds, info)
            rgb, _ = read_composite(ds, info)
        emb = model.encode(rgb)
        with use_decoder(model, dec):
            h, w = label.shape
            pred = model.decode(emb, boxes=np.array([[0.0, 0.0, w, h]]), multimask=False)
        sam = sigmoid(pred.best_logits()[0])
        out.setdefault("index", {})[chip] = counts(prior.water(), label)
        for margin, agree in FUSION_GRID:
            fused, _ = fusion.guarded_gate(sam, prior.probability(), prior.logits(),
                                           prior.valid, margin, agree)
            out.setdefault(f"gate m={margin:g} a={agree:g}", {})[chip] = counts(
                (fused > 0.5) & prior.valid, label)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CHIPS))
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint: cross-validate the fusion")
    parser.add_argument("--decoder", default="satellite")
    parser.add_argument("--search-ashman", action="store_true",
                        help="also search the bimodality test's minimum Ashman's D (1.5, 2, 2.5)")
    args = parser.parse_args(argv)
    if args.search_ashman:
        GRID["min_ashman"] = (1.5, 2.0, 2.5)
    chips = load_chips(Path(args.data))
    if args.checkpoint:
        table = fusion_counts(chips, Path(args.data), args.checkpoint, args.decoder)
        held, chosen = cross_validate(table, {c: [c] for c in chips})
        report("fusion, leave-one-chip-out (held out)", held, chips)
        for group, setting in chosen.items():
            print(f"    without {group}: {setting}")
        report("index alone (no fitted fusion parameter)", table["index"], chips)
        better = summary(held)[0] > summary(table["index"])[0]
        print(f"\nauto for radar: {'fused' if better else 'index'} (held-out fused mean IoU "
              f"{summary(held)[0]:.4f} vs index alone {summary(table['index'])[0]:.4f})")
        return 0
    table = grid_counts(chips)
    label = "polarisation, method, despeckle, tile, min_ashman, min_area"
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
