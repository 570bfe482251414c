"""Encoder speed of an adapted model (adapters merged) against the base encoder.

Loads MobileSAM twice through ``load_model``: with the decoder-only ``flood-decoder-only``
decoder and with an adapted-model file (``--adapted FILE`` or a shipped name such as
``flood``; default: random rank-``--rank`` adapters written to a temporary file, which costs
the same), then times the image encoder on the same
1024 x 1024 input, alternating the two models ``--reps`` times so that a busy machine slows
both alike. Prints the median seconds of each and their ratio; the ratio is the figure to
quote (the issue's target: within 5 %).

    python benchmarks/adapter_speed.py --checkpoint ../shared/models/mobile_sam.pt --reps 5
    python benchmarks/adapter_speed.py --checkpoint ... --adapted flood --runtime openvino
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from geofloodsam.model.decoders import save_decoder
from geofloodsam.model.lora import adapter_state, add_adapters
from geofloodsam.model.sam import load_model


def random_adapted_file(model, path: Path, rank: int) -> Path:
    """An adapted-model file with seeded random adapters on ``model``'s encoder."""
    encoder = copy.deepcopy(model.sam.image_encoder)
    add_adapters(encoder, rank=rank)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) * 0.01 for k, v in
             adapter_state(encoder).items()}
    meta = {"base_model": model.name, "base_sha256": model.checkpoint_sha256,
            "train": "adapter", "rank": rank, "adapt": "attn"}
    return save_decoder(path, model.sam.mask_decoder.state_dict(), meta, half=True,
                        encoder={"kind": "lora", "state": state})


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--adapted", default=None,
                    help="an adapted-model file or shipped name (default: random)")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--runtime", default="torch", help="torch or openvino")
    args = ap.parse_args()
    opts = dict(checkpoint=args.checkpoint, device="cpu", precision="fp32",
                runtime=args.runtime)
    base = load_model("vit_t", decoder="flood-decoder-only", **opts)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.adapted or random_adapted_file(base, Path(tmp) / "adapted.pt", args.rank)
        adapted = load_model("vit_t", decoder=path, **opts)
    image = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    x = torch.stack([base.preprocess(image)[0]])
    times: dict[str, list[float]] = {"decoder-only": [], "adapted (merged)": []}
    for model in (base, adapted):  # warm-up (and OpenVINO compilation)
        model.run_encoder(x)
    for _ in range(args.reps):
        for name, model in (("decoder-only", base), ("adapted (merged)", adapted)):
            t = time.perf_counter()
            model.run_encoder(x)
            times[name].append(time.perf_counter() - t)
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, m in medians.items():
        print(f"{name}: median {m:.3f} s per 1024 px encoder pass ({args.reps} reps)")
    ratio = medians["adapted (merged)"] / medians["decoder-only"]
    print(f"ratio adapted / decoder-only: {ratio:.3f}")


if __name__ == "__main__":
    main()
