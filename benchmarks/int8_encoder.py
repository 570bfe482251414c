"""int8 image encoders on OpenVINO (NNCF) against fp32: masks and encoder speed.

Int8 variants of MobileSAM's image encoder are made from its fp32 OpenVINO IR (the one
``--runtime openvino`` caches) with NNCF (``--variants``, see :data:`VARIANTS`):

* ``int8-weights``: what ``--precision int8`` runs (``geofloodsam.model.openvino_int8``):
  ``nncf.compress_weights``, the weights of the fully connected layers int8 (asymmetric,
  per output channel), convolutions and every activation fp32; no calibration data;
* ``int8-weights-all``: the same with the convolutions' weights int8 too;
* ``int8-ptq``, ``int8-ptq-transformer``: ``nncf.quantize`` (post-training quantisation of
  weights and activations), calibrated on ``--calibration`` 1024² tiles cut from scenes of
  the project's own generator (``lake_river_scene`` with seeds ``--calibration-seeds``: not
  the README demo, not ``delta_4band``, not the synthetic scenes below, not the shared
  labelled data).

Then, for each scene, ``segment`` runs in this process once per path (``torch-fp32``, the
reference; ``openvino-fp32``; each int8 variant, the OpenVINO encoder of an fp32 OpenVINO
model swapped for the variant's graph) and the masks are compared with IoU of the water
pixels against ``torch-fp32``. Scenes: the README demo (``riverside_rgb`` with its prompts),
``delta_4band`` (``--bands 1,2,3``, its prompts) and the synthetic scenes of
``segment_benchmark.py`` (``--sizes``, a point on every 4th lake; ``--promptless-sizes``:
the same scenes without prompts, every tile segmented). Last, encoder seconds per tile,
interleaved, after the relative error and cosine of each path's features against torch fp32
on the same tiles: ``--rounds`` rounds, each encoding ``--timing-tiles`` tiles of the README demo
with every path (the order reversed every other round), printed per path as median
[min-max] seconds and as ratios to OpenVINO fp32 and torch fp32 per round. The load
average is printed with the figures (``machine_load.py``).

    python benchmarks/int8_encoder.py --checkpoint ../shared/models/mobile_sam.pt
    python benchmarks/int8_encoder.py --checkpoint ../shared/models/mobile_sam.pt \
        --variants int8-weights --scenes --sizes 16384 --rounds 0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from machine_load import check_quiet, cores  # noqa: E402
from precision_benchmark import DEMO, cpu_model, mask_iou  # noqa: E402

DELTA = ("sample_tiles/delta_4band.tif", "sample_tiles/delta_4band_prompts_utm.geojson")
REFERENCE = "torch-fp32"


# ----------------------------------------------------------------------------- variants
def calibration_tiles(model, seeds: list[int], count: int, workdir: Path) -> list[np.ndarray]:
    """``count`` preprocessed (1, 3, S, S) float32 tiles: 1024² windows of generated scenes."""
    import rasterio

    from geofloodsam.datasets.sample_scenes import lake_river_scene

    tiles: list[np.ndarray] = []
    for seed in seeds:
        files = lake_river_scene(workdir / "calibration", seed)
        with rasterio.open(files.image) as ds:
            image = np.moveaxis(ds.read([1, 2, 3]), 0, -1)
        h, w = image.shape[:2]
        side = model.image_size
        for y in (0, max(0, h - side)):
            for x in (0, max(0, w - side)):
                x_t, _ = model.preprocess(image[y : y + side, x : x + side])
                tiles.append(x_t[None].numpy().astype(np.float32))
    return tiles[:count]


def fp32_ir(model) -> Path:
    """The fp32 encoder IR of ``model`` (an OpenVINO model): cached by the runtime."""
    return model._openvino.graph._ir()


def _ptq(model, calibration: list[np.ndarray], transformer: bool):
    """``nncf.quantize``: weights and activations int8."""
    import nncf

    if transformer:
        return nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration),
                             model_type=nncf.ModelType.TRANSFORMER)
    ends = nncf.IgnoredScope(patterns=[".*neck.*", ".*patch_embed.*"], validate=False)
    return nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration),
                         ignored_scope=ends)


def _weights_all(model):
    import nncf

    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


#: the variants: name -> (what it is, needs calibration, how it is made from the fp32 IR)
VARIANTS = {
    "int8-weights": ("the shipped --precision int8: compress_weights INT8_ASYM, MatMul "
                     "weights only (openvino_int8.INT8_RECIPE)", False, None),
    "int8-weights-all": ("compress_weights INT8_ASYM, every layer's weights", False,
                         _weights_all),
    "int8-ptq": ("quantize (weights + activations), default preset, patch embedding and "
                 "neck left fp32", True, lambda m, c: _ptq(m, c, False)),
    "int8-ptq-transformer": ("quantize, ModelType.TRANSFORMER (SmoothQuant)", True,
                             lambda m, c: _ptq(m, c, True)),
}


def make_variants(ir: Path, names: list[str], calibration, workdir: Path) -> dict[str, Path]:
    """IR files of the int8 variants ``names`` of the fp32 IR ``ir``."""
    import logging

    import nncf
    import openvino as ov

    from geofloodsam.model.openvino_int8 import compress_weights

    nncf.set_log_level(logging.ERROR)
    core = ov.Core()
    out: dict[str, Path] = {}
    for name in names:
        what, calibrated, make = VARIANTS[name]
        started = time.perf_counter()
        model = core.read_model(str(ir))
        if make is None:
            model = compress_weights(model)
        else:
            model = make(model, calibration()) if calibrated else make(model)
        out[name] = workdir / f"{name}.xml"
        ov.save_model(model, str(out[name]), compress_to_fp16=False)
        print(f"{name}: {what}; made in {time.perf_counter() - started:.1f} s", flush=True)
    return out


class CompiledEncoder:
    """An IR compiled as the runtime compiles its encoder; called like ``OpenVinoEncoder``."""

    def __init__(self, ir: Path, threads: int, dynamic_group: int = 32) -> None:
        import openvino as ov

        # the group size of OpenVINO's on-the-fly int8 activations, as in INT8_RECIPE
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(threads),
                  "DYNAMIC_QUANTIZATION_GROUP_SIZE": int(dynamic_group)}
        self.compiled = ov.Core().compile_model(str(ir), "CPU", config)

    def __call__(self, x):
        import torch

        batch = x.detach().to("cpu", torch.float32).contiguous().numpy()
        outs = [np.array(self.compiled(i[None])[0], np.float32, copy=True) for i in batch]
        return torch.from_numpy(np.concatenate(outs))


# ----------------------------------------------------------------------------- masks
def run_path(path: str, scene: Path, prompts: Path | None, out: Path, extra: dict,
             encoders: dict) -> dict:
    """``segment`` on one path in this process; the mask file and run.json's figures."""
    from geofloodsam.model import spec
    from geofloodsam.segmentation.pipeline import segment

    runtime, precision = ("torch", "fp32") if path == REFERENCE else ("openvino", "fp32")
    original = spec.ModelSpec.load

    def load_swapped(self):
        model = original(self)
        if path in encoders:
            model._openvino_encoders[model.encoder_sha256] = encoders[path]
        return model

    spec.ModelSpec.load = load_swapped
    try:
        result = segment(scene, prompts, out, precision=precision, runtime=runtime, quiet=True,
                         threads=None, **extra)
    finally:
        spec.ModelSpec.load = original
    record = result.record
    tiles = max(1, record["tiles"]["encoded"])
    return {"mask": str(result.mask_path), "tiles": record["tiles"]["encoded"],
            "encoder_s_per_tile": record["timings"]["encoder_s"] / tiles}


def scene_list(args, workdir: Path) -> list[tuple[str, Path, Path | None, dict]]:
    """(label, scene, prompts, segment options) of every scene measured."""
    from segment_benchmark import write_prompts, write_scene

    out = []
    if "demo" in args.scenes:
        out.append(("README demo (riverside_rgb)", REPO / DEMO[0], REPO / DEMO[1], {}))
    if "delta" in args.scenes:
        out.append(("delta_4band", REPO / DELTA[0], REPO / DELTA[1], {"bands": [1, 2, 3]}))
    for size in sorted(set(args.sizes) | set(args.promptless_sizes)):
        scene = workdir / f"synthetic_{size}.tif"
        write_scene(scene, size)
        if size in args.sizes:
            prompts = workdir / f"synthetic_{size}_prompts.geojson"
            write_prompts(prompts, size, 4)
            out.append((f"synthetic {size}² (every 4th lake)", scene, prompts, {}))
        if size in args.promptless_sizes:
            out.append((f"synthetic {size}², promptless", scene, None, {}))
    return out


def compare_masks(args, paths: list[str], encoders: dict, workdir: Path) -> list[dict]:
    """IoU against torch fp32 of every path's mask, per scene."""
    rows = []
    for label, scene, prompts, extra in scene_list(args, workdir):
        runs = {}
        for path in paths:
            out = workdir / "masks" / f"{scene.stem}{'' if prompts else '_promptless'}" / path
            runs[path] = run_path(path, scene, prompts, out, extra, encoders)
        ref = runs[REFERENCE]["mask"]
        row = {"scene": label, "tiles": runs[REFERENCE]["tiles"],
               "iou": {p: mask_iou(ref, r["mask"]) for p, r in runs.items()}}
        print(f"{label}: {row['tiles']} tiles; IoU vs {REFERENCE}: "
              + ", ".join(f"{p} {v:.4f}" for p, v in row["iou"].items()), flush=True)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- speed
def demo_tiles(model, count: int) -> list:
    """``count`` preprocessed 1024² windows of the README demo scene."""
    import rasterio

    with rasterio.open(REPO / DEMO[0]) as ds:
        image = np.moveaxis(ds.read([1, 2, 3]), 0, -1)
    side = model.image_size
    corners = [(y, x) for y in range(0, image.shape[0] - side + 1, 768)
               for x in range(0, image.shape[1] - side + 1, 768)]
    return [model.preprocess(image[y : y + side, x : x + side])[0][None]
            for y, x in corners[:count]]


def time_encoders(model, encoders: dict, paths: list[str], tiles: list, rounds: int) -> dict:
    """Seconds per tile of each path, interleaved (order reversed every other round)."""
    import torch

    def encode(path, x):
        if path == REFERENCE:
            with torch.inference_mode():
                return model.sam.image_encoder(x)
        return encoders[path](x)

    for path in paths:  # warm-up: first calls plan buffers and kernels
        encode(path, tiles[0])
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        order = paths if r % 2 == 0 else paths[::-1]
        seconds = {}
        for path in order:
            t0 = time.perf_counter()
            for x in tiles:
                encode(path, x)
            seconds[path] = (time.perf_counter() - t0) / len(tiles)
        per_round.append(seconds)
        print(f"round {r + 1}: " + ", ".join(f"{p} {s:.3f} s/tile" for p, s in seconds.items())
              + f"  (load average {os.getloadavg()[0]:.1f})", flush=True)
    return {"per_round": per_round}


def feature_errors(model, encoders: dict, paths: list[str], tiles: list) -> dict:
    """Per path: relative error and cosine of its features against torch fp32, per tile."""
    import torch

    with torch.inference_mode():
        refs = [model.sam.image_encoder(x) for x in tiles]
    out = {}
    for path in paths[1:]:
        rows = []
        for x, ref in zip(tiles, refs, strict=True):
            got = encoders[path](x)
            rel = float((got - ref).norm() / ref.norm())
            cos = float(torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), 0))
            rows.append((rel, cos))
        out[path] = rows
        print(f"{path}: features vs {REFERENCE}, per tile: relative error "
              + " ".join(f"{r:.4f}" for r, _ in rows) + "; cosine "
              + " ".join(f"{c:.4f}" for _, c in rows), flush=True)
    return out


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """``median [min-max]``."""
    return (fmt.format(statistics.median(values)) + " [" + fmt.format(min(values)) + "-"
            + fmt.format(max(values)) + "]")


def speed_report(timing: dict, paths: list[str]) -> list[str]:
    """Per path: seconds per tile and the per-round ratios to OpenVINO fp32 and torch fp32."""
    lines = ["path                  s/tile (median [min-max])   vs openvino-fp32     vs torch-fp32"]
    rounds = timing["per_round"]
    for path in paths:
        own = [r[path] for r in rounds]
        vs_ov = [r["openvino-fp32"] / r[path] for r in rounds]
        vs_torch = [r[REFERENCE] / r[path] for r in rounds]
        lines.append(f"{path:21s} {spread(own, '{:.3f}'):27s} {spread(vs_ov) + 'x':20s} "
                     f"{spread(vs_torch)}x")
    return lines


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="int8 variants to make and measure")
    parser.add_argument("--scenes", nargs="*", default=["demo", "delta"],
                        choices=["demo", "delta"], help="sample scenes to segment")
    parser.add_argument("--sizes", type=int, nargs="*", default=[4096],
                        help="synthetic scenes with a point on every 4th lake")
    parser.add_argument("--promptless-sizes", type=int, nargs="*", default=[],
                        help="synthetic scenes run promptless (every tile)")
    parser.add_argument("--calibration-seeds", type=int, nargs="+", default=[2401, 2402],
                        help="seeds of lake_river_scene for the calibration tiles")
    parser.add_argument("--calibration", type=int, default=8, help="calibration tiles")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (0: none)")
    parser.add_argument("--timing-tiles", type=int, default=3, help="demo tiles per round")
    parser.add_argument("--dynamic-off", action="store_true",
                        help="also int8-weights with OpenVINO's dynamic quantisation off")
    parser.add_argument("--no-masks", dest="masks", action="store_false",
                        help="only the encoder timing")
    parser.add_argument("--workdir", type=Path, help="where variants and outputs go [tmp]")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    import torch

    from geofloodsam.model.sam import load_model

    print(cpu_model())
    print(f"torch threads {torch.get_num_threads()}, {cores()} cores")
    check_quiet("int8 encoder benchmark")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gfs-int8-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = load_model("vit_t", args.checkpoint, precision="fp32", runtime="openvino")
    tiles: list = []

    def calibration() -> list[np.ndarray]:
        if not tiles:
            tiles.extend(calibration_tiles(model, args.calibration_seeds, args.calibration,
                                           workdir))
        return tiles

    variants = make_variants(fp32_ir(model), args.variants, calibration, workdir)
    threads = torch.get_num_threads()
    encoders = {"openvino-fp32": CompiledEncoder(fp32_ir(model), threads)}
    encoders |= {name: CompiledEncoder(ir, threads) for name, ir in variants.items()}
    if "int8-weights" in variants and args.dynamic_off:  # the same graph, no int8 arithmetic
        encoders["int8-weights-dq0"] = CompiledEncoder(variants["int8-weights"], threads, 0)
    paths = [REFERENCE, *encoders]
    figures: dict = {"cpu": cpu_model(), "calibration_seeds": args.calibration_seeds,
                     "calibration_tiles": len(tiles)}
    if args.masks:
        figures["masks"] = compare_masks(args, paths, encoders, workdir)
    if args.rounds > 0:
        tiles = demo_tiles(model, args.timing_tiles)
        figures["features"] = feature_errors(model, encoders, paths, tiles)
        load0 = os.getloadavg()[0]
        figures["timing"] = time_encoders(model, encoders, paths, tiles, args.rounds)
        print(f"encoder, {args.timing_tiles} README demo tiles x {args.rounds} interleaved "
              f"rounds, load average {load0:.1f}-{os.getloadavg()[0]:.1f} on {cores()} cores:")
        print("\n".join(speed_report(figures["timing"], paths)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
