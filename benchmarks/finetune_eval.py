"""Score a decoder on a data set split with the default evaluation prompts.

Interim benchmark for fine-tuning experiments until ``geofloodsam evaluate`` covers them:
per-image IoU, Dice, Precision, Recall at full resolution (nodata excluded), means over the
split, for the box of all water, the deepest point of the largest water body (3 masks, the
highest predicted IoU kept) and the whole-image box (``segment``'s promptless mode).

    python benchmarks/finetune_eval.py --data ../shared/data/flood-area-segmentation \
        --split test --decoder pretrained --decoder flood --cache-dir /tmp/gfs_cache/emb
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from geofloodsam.datasets.reading import open_dataset
from geofloodsam.datasets.truth_prompts import default_prompts
from geofloodsam.evaluation import metrics
from geofloodsam.model.decoders import apply_decoder
from geofloodsam.model.embedding_cache import PersistentEmbeddingCache
from geofloodsam.model.sam import load_model


def score_split(model, samples, cache) -> dict[str, dict[str, float]]:
    """Mean scores per prompt kind (box, point, whole) of ``model`` on ``samples``."""
    embs = cache.get_many(samples, "none", progress=False)
    rows: dict[str, list[dict[str, float]]] = {"box": [], "point": [], "none": []}
    for sample, emb in zip(samples, embs, strict=True):
        water, valid = sample.load_truth()
        prompts = default_prompts(water & valid)
        h, w = water.shape
        calls = {"none": {"boxes": [[0, 0, w, h]]}}
        if prompts["box"]["box"] is not None:
            calls["box"] = {"boxes": [prompts["box"]["box"]]}
        if prompts["point"]["points"]:
            calls["point"] = {
                "points": [prompts["point"]["points"]],
                "point_labels": [prompts["point"]["labels"]],
                "multimask": True,
            }
        for kind, kwargs in calls.items():
            pred = model.decode(emb, **kwargs)
            rows[kind].append(metrics.scores(pred.best_logits()[0] > 0, water, valid))
    return {
        kind: {"n": len(r), **{m: float(np.mean([x[m] for x in r])) for m in metrics.METRICS}}
        for kind, r in rows.items()
    }


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--decoder", action="append", default=None)
    ap.add_argument("--model", default="vit_t")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()
    samples = open_dataset(args.data, args.split)
    base = load_model(  # the reference encoder path (fp32, torch)
        args.model, args.checkpoint, "pretrained", "cpu", precision="fp32", runtime="torch"
    )
    original = {k: v.clone() for k, v in base.sam.mask_decoder.state_dict().items()}
    cache = PersistentEmbeddingCache(args.cache_dir, base)
    results = {}
    for decoder in args.decoder or ["pretrained"]:
        base.sam.mask_decoder.load_state_dict(original)
        model = apply_decoder(base, decoder)
        results[decoder] = score_split(model, samples, cache)
        for kind, s in results[decoder].items():
            print(
                f"{decoder:>12} {kind:>5} n={s['n']:3d} IoU {s['iou']:.4f} Dice {s['dice']:.4f} "
                f"P {s['precision']:.4f} R {s['recall']:.4f}",
                flush=True,
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
