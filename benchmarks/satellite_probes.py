"""Small measurements quoted in the satellite docs, each reproducible by one command.

    python benchmarks/satellite_probes.py s2-variants      # docs/satellite.md: S2 index variants
    python benchmarks/satellite_probes.py esw-ceiling      # docs/finetuning.md: 256 px mask ceiling
    python benchmarks/satellite_probes.py mask-diff A.tif B.tif  # docs/performance.md: bf16

``s2-variants``: water indices, thresholds, hysteresis and smoothing on the one labelled
Sentinel-2 chip (Spain_7370579), IoU against its label (-1 excluded); hysteresis also on the
S1 chips (pooled IoU). ``esw-ceiling``: the Earth Surface Water val masks pushed through
SAM's low-resolution mask (the image resized to 1024 px, masks at 1/4 of that, bilinear
back up), mean IoU against themselves. ``mask-diff``: water pixels, polygons-like fragments
and IoU between two mask COGs.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import rasterio
from scipy import ndimage

from geofloodsam.raster.sensors import detect_sensor, physical, read_bands
from geofloodsam.water import index as wi
from geofloodsam.water.scene_prior import scene_prior

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHIPS = DATA / "sen1floods11"


def _iou(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    p, t = pred & valid, truth & valid
    return float((p & t).sum() / max((p | t).sum(), 1))


def _hysteresis(prior, seed: float, grow: float) -> np.ndarray:
    lg, v = prior.logits(), prior.valid
    labels, n = ndimage.label((lg >= -grow) & v, structure=np.ones((3, 3)))
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[(lg >= seed) & v])] = True
    keep[0] = False
    return keep[labels]


def s2_variants() -> None:
    image = CHIPS / "S2Hand" / "Spain_7370579_S2Hand.tif"
    with rasterio.open(CHIPS / "LabelHand" / "Spain_7370579_LabelHand.tif") as ds:
        label = ds.read(1)
    valid, truth = label != -1, label == 1
    with rasterio.open(image) as ds:
        info = detect_sensor(ds)
        band = {n: physical(read_bands(ds, [i])[0], info)
                for n, i in (("B3", 3), ("B8", 8), ("B11", 12), ("B12", 13))}
        prior = scene_prior(ds, info)
    nd, mn = wi.ndwi(band["B3"], band["B8"]), wi.mndwi(band["B3"], band["B11"])
    rows = [("NDWI > 0 (default)", nd > 0)]
    rows += [(f"NDWI > {t:g}", nd > t) for t in (-0.05, -0.1)]
    rows += [("MNDWI > 0", mn > 0)]
    for key, score in (("NDWI", nd), ("MNDWI", mn)):
        for method in ("otsu", "ki"):
            t, _ = wi.scene_threshold(score, key.lower(), method)
            rows.append((f"{key}, {method} of the bimodal tiles ({t:.3f})", score > t))
    awei = 4 * (band["B3"] - band["B11"]) - (0.25 * band["B8"] + 2.75 * band["B12"])
    rows.append(("AWEI (no shadow) > 0", awei > 0))
    for seed in (1, 2):
        for grow in (1, 2):
            rows.append((f"NDWI hysteresis, seeds >= {seed} widths, grown into >= -{grow}",
                         _hysteresis(prior, seed, grow)))
    for sigma in (1, 2, 3):
        rows.append((f"Gaussian sigma {sigma} px, then NDWI > 0",
                     ndimage.gaussian_filter(np.nan_to_num(nd), sigma) > 0))
    for name, water in rows:
        p = water & valid
        tp = (p & truth).sum()
        print(f"{name:60s} IoU {_iou(water, truth, valid):.3f}  precision "
              f"{tp / max(p.sum(), 1):.3f}  recall {tp / (truth & valid).sum():.3f}")
    print("S1 chips, pooled IoU (index alone vs hysteresis):")
    for seed, grow in ((None, None), (1, 1), (1, 2), (2, 1), (2, 2)):
        tp = fp = fn = 0
        for image in sorted((CHIPS / "S1Hand").glob("*.tif")):
            chip = image.stem.rsplit("_", 1)[0]
            with rasterio.open(CHIPS / "LabelHand" / f"{chip}_LabelHand.tif") as ds:
                label = ds.read(1)
            with rasterio.open(image) as ds:
                try:
                    prior = scene_prior(ds, detect_sensor(ds))
                except Exception:  # noqa: BLE001 - an all-NaN chip
                    continue
            v = (label != -1) & prior.valid
            if not v.any():
                continue
            w = prior.water() if seed is None else _hysteresis(prior, seed, grow)
            t = label == 1
            tp += int((w & t & v).sum())
            fp += int((w & ~t & v).sum())
            fn += int((~w & t & v).sum())
        name = "index alone" if seed is None else f"hysteresis {seed}/{grow}"
        print(f"  {name:20s} {tp / (tp + fp + fn):.3f}")


def esw_ceiling() -> None:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    root = DATA / "earth-surface-water"
    with open(root / "splits.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
    ious = []
    for r in rows:
        m = np.array(Image.open(root / r["mask"]).convert("L")) > 127
        h, w = m.shape
        s = 1024 / max(h, w)
        t = torch.from_numpy(m.astype(np.float32))[None, None]
        low = F.interpolate(t, (round(h * s / 4), round(w * s / 4)), mode="area")
        up = F.interpolate(torch.logit(low.clamp(1e-4, 1 - 1e-4)), (h, w), mode="bilinear",
                           align_corners=False)[0, 0].numpy() > 0
        ious.append((up & m).sum() / (up | m).sum())
        print(f"{r['id']:>4s} {ious[-1]:.3f}")
    print(f"mean IoU of the truth through the 256 px mask: {np.mean(ious):.3f}")


def mask_diff(a: str, b: str) -> None:
    with rasterio.open(a) as da, rasterio.open(b) as db:
        wa, wb = da.read(1) == 1, db.read(1) == 1
    fragments = [ndimage.label(w, structure=np.ones((3, 3)))[1] for w in (wa, wb)]
    labels, n = ndimage.label(wa ^ wb, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    print(f"water pixels {wa.sum()} vs {wb.sum()}; fragments {fragments[0]} vs {fragments[1]}; "
          f"IoU {(wa & wb).sum() / max((wa | wb).sum(), 1):.4f}; {n} differing fragments, "
          f"largest {int(sizes.max()) if n else 0} px")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("s2-variants")
    sub.add_parser("esw-ceiling")
    diff = sub.add_parser("mask-diff")
    diff.add_argument("a")
    diff.add_argument("b")
    args = parser.parse_args(argv)
    if args.what == "s2-variants":
        s2_variants()
    elif args.what == "esw-ceiling":
        esw_ceiling()
    else:
        mask_diff(args.a, args.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
