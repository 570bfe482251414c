"""Encoder candidates on one real 1024² tile of the README demo, interleaved in one process.

Candidates (those whose package is installed): torch fp32 (the reference), torch bf16
autocast (``--bf16``; emulated, so slow, on CPUs without bf16 units), OpenVINO fp32 (the IR
converted once, kept in ``--workdir``), ONNX Runtime fp32 (``--onnx``; exported once).
Prints the embedding's error against torch fp32, then per candidate the median seconds of
``--reps`` interleaved calls (A B C A B C ...), the ratio to torch fp32 and the load average.

    python benchmarks/encoder_candidates.py --checkpoint ../shared/models/mobile_sam.pt --onnx
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--bf16", action="store_true", help="also torch bf16 autocast")
    parser.add_argument("--onnx", action="store_true", help="also ONNX Runtime fp32")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    import rasterio

    from geofloodsam.model.sam import load_model

    model = load_model(  # the reference encoder path (fp32, torch)
        "vit_t", checkpoint=args.checkpoint, device="cpu", precision="fp32", runtime="torch"
    )
    with rasterio.open(REPO / "sample_tiles" / "riverside_rgb.tif") as ds:
        data = ds.read([1, 2, 3], window=((0, 1024), (0, 1024)))
    x = model.preprocess(np.ascontiguousarray(data.transpose(1, 2, 0)).astype(np.uint8))[0][None]
    encoder = model.sam.image_encoder
    threads = torch.get_num_threads()

    def torch_path(bf16: bool):
        @torch.inference_mode()
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return encoder(x).float()
        return run

    cands = {"torch fp32": torch_path(False)}
    if args.bf16:
        cands["torch bf16"] = torch_path(True)
    if importlib.util.find_spec("openvino"):
        import openvino as ov

        core, xml = ov.Core(), args.workdir / "encoder_candidates_ov.xml"
        if not xml.is_file():
            ov.save_model(ov.convert_model(encoder, example_input=x), str(xml),
                          compress_to_fp16=False)
        compiled = core.compile_model(core.read_model(str(xml)), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads})
        cands["openvino fp32"] = lambda: torch.from_numpy(compiled([x.numpy()])[0].copy())
    if args.onnx and importlib.util.find_spec("onnxruntime"):
        import onnxruntime as ort

        path = args.workdir / "encoder_candidates.onnx"
        if not path.is_file():
            torch.onnx.export(encoder, x, str(path), opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        cands["onnxruntime fp32"] = lambda: torch.from_numpy(sess.run(None, {name: x.numpy()})[0])

    ref = cands["torch fp32"]()
    for label, run in cands.items():
        y = run()
        print(f"{label:18s} max |diff| {float((y - ref).abs().max()):.2e}, "
              f"relative {float((y - ref).norm() / ref.norm()):.2e}")
    times: dict[str, list[float]] = {k: [] for k in cands}
    loads = []
    for _ in range(args.reps):
        for label, run in cands.items():
            t0 = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - t0)
            loads.append(os.getloadavg()[0])
    base = statistics.median(times["torch fp32"])
    for label, t in times.items():
        med = statistics.median(t)
        print(f"{label:18s} median {med:6.2f} s  {base / med:.2f}x"
              f"  ({', '.join(f'{v:.2f}' for v in t)})")
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}; "
          f"{threads} torch threads")


if __name__ == "__main__":
    main()
