"""Satellite evaluation: water index alone, SAM decoders promptless, and index + SAM fusions.

Scores every shared Sen1Floods11 chip (the S1 chips as 2-band VV/VH dB, the S2 chip as
13-band L1C, read as ``geofloodsam evaluate`` reads them:
:class:`geofloodsam.datasets.reading.Sample` through :mod:`geofloodsam.raster.sensors`, the prior of
:func:`geofloodsam.evaluation.satellite.sample_prior`) and the Earth Surface Water ``val``
split (plain RGB, no index). Chips whose label has no valid pixel (all -1) or whose image is
all nodata are skipped with a warning (:meth:`Sample.unusable`); label -1 and image nodata
are excluded from every score. Each chip is one 512 x 512 tile, encoded once (embeddings
through the shared embedding cache) and decoded by every decoder.

``index``, ``<decoder>``, ``<decoder>+guard`` and ``auto`` are the package's
(:mod:`geofloodsam.evaluation.satellite`: the rows ``index``, ``<decoder> none``,
``fused/<decoder>`` and ``auto/<decoder>`` of ``geofloodsam evaluate --method ...``); the
other fusions are measured here only.

Methods (rows): ``index`` (the prior alone, ``--method index``); ``<decoder>`` promptless
(whole-image box); and, for every decoder, the fusions of ``fusion_experiments.py`` (here):
``+points`` (whole box + points placed in confident index water/dry), ``+mask`` (whole box +
the prior as mask_input), ``+mean`` / ``+gate`` / ``+union`` / ``+intersection``
(probability rules on the promptless SAM output), and ``auto`` (the configuration
:func:`geofloodsam.water.methods.choose` picks per sensor). Scores: IoU pooled over all pixels of a
group (confusion counts summed) and the mean of the per-chip IoUs, plus every chip's IoU.

    python benchmarks/satellite_eval.py --checkpoint ../shared/models/mobile_sam.pt \\
        --cache-dir /tmp/sat_cache/emb --out docs/satellite
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from geofloodsam.datasets.reading import Sample, open_dataset
from geofloodsam.evaluation import satellite
from geofloodsam.evaluation.metrics import Confusion, confusion
from geofloodsam.model.decoders import load_decoders, use_decoder
from geofloodsam.model.embedding_cache import PersistentEmbeddingCache
from geofloodsam.model.logits import sigmoid
from geofloodsam.model.sam import load_model
from geofloodsam.raster.sensors import SENSORS, detect_sensor, physical, read_bands
from geofloodsam.water import fusion, methods
from geofloodsam.water.index import WaterPrior

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fusion_experiments as experiments  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FUSIONS = ("points", "mask", *experiments.RULES)


@dataclass
class Item:
    """One scored image: group, name, sensor, composite, truth and prior."""

    group: str
    name: str
    sensor: str
    image: object  # HxWx3 uint8 array, or a datasets.Sample
    water: np.ndarray
    valid: np.ndarray
    prior: WaterPrior | None


def load_chip(image_path: Path, label_path: Path, group: str, composite: str | None) -> Item | None:
    """A Sen1Floods11 chip as ``evaluate`` reads it (sensor composite, prior); None if unusable."""
    name = image_path.name.rsplit("_", 1)[0]
    sample = Sample(name, None, image_path, label_path, composite=composite)
    why = sample.unusable()
    if why is not None:
        warnings.warn(f"skipping {name} ({group}): {why}", stacklevel=2)
        return None
    water, valid = sample.load_truth()
    return Item(group, name, sample.sensor_name, sample.load_image(), water, valid,
                satellite.sample_prior(sample))


def load_items(data: Path, esw_split: str) -> list[Item]:
    """Every usable Sen1Floods11 chip (S1; S2 in both composites) and the ESW split."""
    items: list[Item] = []
    root = data / "sen1floods11"
    for label in sorted((root / "LabelHand").glob("*_LabelHand.tif")):
        chip = label.name.removesuffix("_LabelHand.tif")
        s1 = root / "S1Hand" / f"{chip}_S1Hand.tif"
        if s1.is_file():
            items.append(load_chip(s1, label, "s1", None))
        s2 = root / "S2Hand" / f"{chip}_S2Hand.tif"
        if s2.is_file():
            for comp in ("swir", "true"):
                items.append(load_chip(s2, label, f"s2-{comp}", comp))
    for sample in open_dataset(data / "earth-surface-water", esw_split) if esw_split else ():
        water, valid = sample.load_truth()
        items.append(Item(f"esw-{esw_split}", sample.id, "rgb", sample, water, valid, None))
    return [i for i in items if i is not None]


def predictions(model, decoders, emb, item: Item) -> dict[str, np.ndarray]:
    """Boolean water maps of every method for one item."""
    h, w = item.water.shape
    box = np.array([[0.0, 0.0, float(w), float(h)]])
    out: dict[str, np.ndarray] = {}
    prior = item.prior
    if prior is not None:
        out["index"] = prior.water()
        p_logits, p_prob = prior.logits(), prior.probability()
    sam_probs: dict[str, np.ndarray] = {}
    for dec in decoders:
        with use_decoder(model, dec):
            logits, _ = satellite.promptless_logits(model, emb)
            sam_probs[dec.label] = sigmoid(logits)
            out[dec.label] = logits > 0
            if prior is None:
                continue
            prompts = experiments.prompts_from_prior(p_logits)
            if prompts is not None:
                pts, labels = prompts
                lg = model.decode(emb, points=pts, point_labels=labels, boxes=box).best_logits()
                out[f"{dec.label}+points"] = lg[0] > 0
            else:
                out[f"{dec.label}+points"] = out[dec.label]
            mask_in = experiments.prior_mask_input(p_logits, emb.input_size, model.image_size)
            lg = model.decode(emb, boxes=box, mask_input=mask_in).best_logits()
            out[f"{dec.label}+mask"] = lg[0] > 0
            for rule in experiments.RULES:
                fused = experiments.fuse(sam_probs[dec.label], p_prob, rule, p_logits,
                                    valid=prior.valid)
                out[f"{dec.label}+{rule}"] = fused > 0.5
            out[f"{dec.label}+guard"] = satellite.fused_water(logits, prior)[0]
            boxes = experiments.region_boxes(p_logits)
            if boxes is not None:
                lg = model.decode(emb, boxes=boxes).best_logits().max(axis=0)
                region_prob = sigmoid(lg)
            else:
                region_prob = np.zeros_like(p_prob)
            out[f"{dec.label}+regions"] = region_prob > 0.5
            fused, _ = fusion.guarded_gate(region_prob, p_prob, p_logits, prior.valid)
            out[f"{dec.label}+regions+guard"] = fused > 0.5
    if item.sensor in SENSORS:  # what `--method auto` runs, with its default decoder
        choice = methods.choose(item.sensor, "auto", prompted=False,
                                has_prior=prior is not None)
        key = {"sam": choice.decoder, "index": "index",
               "fused": f"{choice.decoder}+guard"}[choice.method]
        if key in out:
            out["auto"] = out[key]
    return out


def run(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Score everything; returns (summary rows, per-chip rows)."""
    t0 = time.perf_counter()
    items = load_items(Path(args.data), args.esw_split)
    model = load_model(  # the reference encoder path (fp32, torch)
        "vit_t", checkpoint=args.checkpoint, decoder="pretrained", device="cpu",
        precision="fp32", runtime="torch",
    )
    decoders = load_decoders(model, args.decoder)
    cache = PersistentEmbeddingCache(args.cache_dir, model)
    pooled: dict[tuple[str, str], Confusion] = {}
    per_chip: list[dict] = []
    for item in items:
        emb = cache.get(item.image)
        preds = predictions(model, decoders, emb, item)
        for method, pred in preds.items():
            c = confusion(pred, item.water, item.valid)
            key = (item.group, method)
            pooled[key] = pooled.get(key, Confusion()) + c
            per_chip.append({"group": item.group, "chip": item.name, "method": method,
                             "iou": c.scores()["iou"], "water_px": int(item.water.sum()),
                             "valid_px": int(item.valid.sum())})
        print(f"  {item.group} {item.name}: " + ", ".join(
            f"{m} {r['iou']:.3f}" for m, r in
            ((r["method"], r) for r in per_chip if r["chip"] == item.name
             and r["group"] == item.group)), file=sys.stderr, flush=True)
    summary = []
    for (group, method), c in pooled.items():
        chips = [r["iou"] for r in per_chip if r["group"] == group and r["method"] == method]
        s = c.scores()
        summary.append({"group": group, "method": method, "pooled_iou": s["iou"],
                        "mean_iou": float(np.mean(chips)), "n": len(chips),
                        "precision": s["precision"], "recall": s["recall"]})
    print(f"{len(items)} items scored in {time.perf_counter() - t0:.0f} s; embedding cache: "
          f"{cache.stats}", file=sys.stderr)
    return summary, per_chip


def markdown(summary: list[dict], per_chip: list[dict]) -> str:
    """Tables: per group, methods with pooled / mean IoU and every chip's IoU."""
    lines = []
    for group in dict.fromkeys(r["group"] for r in summary):
        rows = [r for r in summary if r["group"] == group]
        chips = list(dict.fromkeys(r["chip"] for r in per_chip if r["group"] == group))
        show = chips if len(chips) <= 10 else []
        lines += [f"### {group} ({len(chips)} images)", ""]
        head = "| method | pooled IoU | mean IoU | precision | recall |"
        lines.append(head + "".join(f" {c} |" for c in show))
        lines.append("| --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(show))
        for r in rows:
            cells = {p["chip"]: p["iou"] for p in per_chip
                     if p["group"] == group and p["method"] == r["method"]}
            lines.append(
                f"| {r['method']} | {r['pooled_iou']:.3f} | {r['mean_iou']:.3f} | "
                f"{r['precision']:.3f} | {r['recall']:.3f} |"
                + "".join(f" {cells.get(c, float('nan')):.3f} |" for c in show)
            )
        lines.append("")
    return "\n".join(lines)


def admissible(summary: list[dict], per_chip: list[dict], tolerance: float = 0.02) -> str:
    """Per group with an index: methods never worse than the index by more than ``tolerance``
    IoU on any chip, best pooled IoU first (the issue's safety rule)."""
    lines = ["### methods never worse than the index alone by more than "
             f"{tolerance} IoU on any chip", ""]
    for group in dict.fromkeys(r["group"] for r in summary):
        index = {p["chip"]: p["iou"] for p in per_chip
                 if p["group"] == group and p["method"] == "index"}
        if not index:
            continue
        ok = []
        for r in summary:
            if r["group"] != group:
                continue
            worst = min(p["iou"] - index[p["chip"]] for p in per_chip
                        if p["group"] == group and p["method"] == r["method"])
            if worst >= -tolerance:
                ok.append((r["pooled_iou"], r["mean_iou"], r["method"], worst))
        ok.sort(key=lambda t: (-t[0], -t[1], t[2]))
        lines.append(f"- {group}: " + "; ".join(
            f"{m} {p:.3f} pooled / {mn:.3f} mean (worst {w:+.3f})" for p, mn, m, w in ok))
    return "\n".join(lines) + "\n"


def sar_sweep(data: Path) -> str:
    """Index alone on the S1 chips for every polarisation x method x despeckle size, with
    issue #11's tiles (128 px) and no minimum mapping unit: that issue's in-sample table
    (the cross-validated choice of issue #20 is ``benchmarks/satellite_cv.py``)."""
    from geofloodsam.water.index import METHODS, sar_prior

    chips = []
    for item in load_items(data, None):
        if item.group == "s1":
            chips.append(item)
    root = data / "sen1floods11" / "S1Hand"
    bands = {}
    for item in chips:
        with rasterio.open(root / f"{item.name}_S1Hand.tif") as ds:
            info = detect_sensor(ds)
            bands[item.name] = physical(read_bands(ds, [info.index_bands["co"],
                                                        info.index_bands["cross"]]), info)
    lines = ["| polarisation | method | despeckle | pooled IoU | mean IoU |",
             "| --- | --- | ---: | ---: | ---: |"]
    for pol in ("vh", "vv", "both"):
        for method in METHODS:
            for size in (1, 3, 5):
                total, ious = Confusion(), []
                for item in chips:
                    vv, vh = bands[item.name]
                    pred = sar_prior(vv, vh, pol, method, size, tile=128, min_area=0).water()
                    c = confusion(pred, item.water, item.valid)
                    total, ious = total + c, [*ious, c.scores()["iou"]]
                lines.append(f"| {pol} | {method} | {size} | {total.scores()['iou']:.3f} | "
                             f"{np.mean(ious):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA), help="the shared data folder")
    ap.add_argument("--checkpoint", default=None, help="MobileSAM checkpoint")
    ap.add_argument("--decoder", action="append", default=None,
                    help="decoders to score (default: pretrained, flood, satellite)")
    ap.add_argument("--esw-split", default="val")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None, help="folder for satellite_eval.csv/.md, per_chip.csv")
    ap.add_argument("--sar-sweep", action="store_true",
                    help="only print the S1 index-alone sweep (no SAM)")
    args = ap.parse_args(argv)
    if args.sar_sweep:
        print(sar_sweep(Path(args.data)))
        return 0
    args.decoder = args.decoder or ["pretrained", "flood", "satellite"]
    summary, per_chip = run(args)
    text = markdown(summary, per_chip) + "\n" + admissible(summary, per_chip)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "satellite_eval.md").write_text(text + "\n")
        for name, rows in (("satellite_eval.csv", summary), ("per_chip.csv", per_chip)):
            with open(out / name, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                for r in rows:
                    writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v
                                     for k, v in r.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
