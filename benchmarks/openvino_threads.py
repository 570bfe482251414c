"""OpenVINO's threads, streams and performance hint for the image encoder on a few cores.

The fp32 encoder IR that ``--runtime openvino`` caches is compiled once per setting (the
runtime's own: ``PERFORMANCE_HINT`` LATENCY, ``INFERENCE_NUM_THREADS`` = torch's threads) and
the same README demo tiles are encoded with each, interleaved (the order reversed every other
round). Settings:

* ``latency``: what the runtime does (one stream, all torch threads);
* ``latency-1thread``: one stream, one thread;
* ``latency-unpinned``: as ``latency``, ``ENABLE_CPU_PINNING`` off;
* ``throughput``: ``PERFORMANCE_HINT`` THROUGHPUT (OpenVINO picks the streams: as many as
  cores here, one thread each), with as many tiles in flight as it has streams
  (``AsyncInferQueue``): the encoder's work per tile when tiles overlap, which the pipeline
  would have to be changed to do;
* ``throughput-1request``: the same compiled graph, one tile at a time (what the pipeline
  does today).

Printed: seconds per tile, median [min-max], and per-round ratios to ``latency``, with the
load average (``machine_load.py``); the features of each setting against ``latency``'s
(they should be the same within float rounding).

    python benchmarks/openvino_threads.py --checkpoint ../shared/models/mobile_sam.pt --rounds 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from int8_encoder import demo_tiles, fp32_ir, spread  # noqa: E402
from machine_load import check_quiet, cores  # noqa: E402


def settings(threads: int) -> dict[str, tuple[dict, bool]]:
    """name -> (compile config, whether tiles overlap in flight)."""
    base = {"INFERENCE_PRECISION_HINT": "f32"}
    latency = {**base, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    throughput = {**base, "PERFORMANCE_HINT": "THROUGHPUT"}
    return {
        "latency": (latency, False),
        "latency-1thread": ({**latency, "INFERENCE_NUM_THREADS": 1}, False),
        "latency-unpinned": ({**latency, "ENABLE_CPU_PINNING": False}, False),
        "throughput": (throughput, True),
        "throughput-1request": (throughput, False),
    }


class Setting:
    """One compiled encoder and how tiles are sent to it."""

    def __init__(self, ir: Path, config: dict, overlap: bool) -> None:
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(ir), "CPU", config)
        self.overlap = overlap
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))

    def encode_all(self, tiles: list[np.ndarray]) -> list[np.ndarray]:
        """The features of every tile (several in flight when ``overlap``)."""
        if not self.overlap:
            return [np.array(self.compiled(t)[0], copy=True) for t in tiles]
        import openvino as ov

        out: list = [None] * len(tiles)
        queue = ov.AsyncInferQueue(self.compiled, max(1, self.streams))

        def done(request, index):
            out[index] = np.array(request.get_output_tensor(0).data, copy=True)

        queue.set_callback(done)
        for i, t in enumerate(tiles):
            queue.start_async({0: t}, i)
        queue.wait_all()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--tiles", type=int, default=4, help="demo tiles per round")
    args = parser.parse_args()

    import torch

    from geofloodsam.model.sam import load_model

    check_quiet("OpenVINO threads benchmark")
    model = load_model("vit_t", args.checkpoint, precision="fp32", runtime="openvino")
    tiles = [t.numpy() for t in demo_tiles(model, args.tiles)]
    ir = fp32_ir(model)
    runs = {name: Setting(ir, config, overlap)
            for name, (config, overlap) in settings(torch.get_num_threads()).items()}
    reference = runs["latency"].encode_all(tiles)
    for name, setting in runs.items():
        got = setting.encode_all(tiles)
        worst = max(float(np.abs(a - b).max()) for a, b in zip(got, reference, strict=True))
        print(f"{name}: {setting.streams} stream(s), {setting.threads} thread(s); features "
              f"vs latency: max |diff| {worst:.2e}", flush=True)
    load0 = os.getloadavg()[0]
    per_round = []
    for r in range(args.rounds):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        seconds = {}
        for name in order:
            t0 = time.perf_counter()
            runs[name].encode_all(tiles)
            seconds[name] = (time.perf_counter() - t0) / len(tiles)
        per_round.append(seconds)
    print(f"{len(tiles)} README demo tiles x {args.rounds} interleaved rounds, load average "
          f"{load0:.1f}-{os.getloadavg()[0]:.1f} on {cores()} cores:")
    for name in runs:
        own = [r[name] for r in per_round]
        ratio = [r["latency"] / r[name] for r in per_round]
        print(f"  {name:20s} {spread(own, '{:.3f}')} s/tile   vs latency {spread(ratio)}x")


if __name__ == "__main__":
    main()
