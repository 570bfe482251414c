"""fp32 vs ``auto`` side by side: the README demo and the synthetic scenes, in one run.

For each scene, ``geofloodsam segment`` runs in fresh subprocesses, once per path and
repeat, interleaved (fp32 auto fp32 auto ...), so that a load on shared cores hits both alike:

* ``fp32``: ``--precision fp32 --runtime torch``, the reference path;
* ``auto``: ``--precision auto --runtime auto`` (what this machine resolves it to is printed).

Scenes: the README demo (``sample_tiles/riverside_rgb.tif`` with
``riverside_rgb_prompts_4326.geojson``) and the synthetic scenes of
``segment_benchmark.py`` (``--sizes``, round lakes, one point on every ``--prompt-every``-th
lake). Printed per scene and path (medians over ``--repeats``): wall seconds of the whole
command (imports and model load included), seconds of the run without loading the model,
encoder seconds per encoded tile, the decoder's share and the share of everything outside
the encoder, and the mask IoU against the first fp32 run (water pixels of the mask COGs);
then the auto/fp32 speed-ups. Every figure carries the load average at the time; a run that
starts or ends with the load average above the core count is flagged ``CONTENDED`` (and a
warning printed, ``machine_load.py``): its timings are not speed figures. One run warms the
OpenVINO IR cache first (converting is a one-off, not counted). ``whole_process.py`` times
the same commands with medians and min-max, the time to the first encode and the phases.

    python benchmarks/precision_benchmark.py --checkpoint ../shared/models/mobile_sam.pt
    python benchmarks/precision_benchmark.py --sizes 4096 16384 --repeats 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from machine_load import check_quiet, cores  # noqa: E402

PATHS = {
    "fp32": ["--precision", "fp32", "--runtime", "torch"],
    "auto": ["--precision", "auto", "--runtime", "auto"],
    # forced paths, to compare with what auto picks (``--paths``)
    "torch-bf16": ["--precision", "bf16", "--runtime", "torch"],
    "openvino-fp32": ["--precision", "fp32", "--runtime", "openvino"],
    "openvino-bf16": ["--precision", "bf16", "--runtime", "openvino"],
}
DEMO = ("sample_tiles/riverside_rgb.tif", "sample_tiles/riverside_rgb_prompts_4326.geojson")


def cpu_model() -> str:
    """The CPU's model name and its SIMD / bf16 flags of interest."""
    name, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.partition(":")[2].strip()
            elif line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    return f"{name}, {os.cpu_count()} cores, flags: " + " ".join(f for f in wanted if f in flags)


def run_segment(scene: Path, prompts: Path, out: Path, path: str, args) -> dict:
    """One ``geofloodsam segment`` in a fresh process; its run.json figures + wall seconds."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "geofloodsam", "segment", str(scene), "--prompts",
           str(prompts), "-o", str(out), "-q", *PATHS[path]]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    load0, quiet = check_quiet(f"{path} on {scene.name}")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    record = json.loads(next(out.glob("*_run.json")).read_text())
    t = record["timings"]
    run_s = t["total_s"] - t["model_load_s"]
    tiles = max(1, record["tiles"]["encoded"])
    return {
        "path": path, "wall_s": wall, "run_s": run_s, "model_load_s": t["model_load_s"],
        "encoder_s": t["encoder_s"], "encoder_s_per_tile": t["encoder_s"] / tiles,
        "decode_s": t["decode_s"], "decoder_share": t["decode_s"] / run_s,
        "outside_encoder_share": (run_s - t["encoder_s"]) / run_s,
        "tiles_encoded": record["tiles"]["encoded"],
        "prompt_decodes": record["tiles"]["prompt_decodes"],
        "precision": record["model"].get("precision"), "runtime": record["model"].get("runtime"),
        "load_before": load0, "load_after": os.getloadavg()[0],
        "contended": not quiet or os.getloadavg()[0] > cores(),
        "mask": str(next(out.glob("*_mask.tif"))),
    }


def mask_iou(a: str, b: str) -> float:
    """IoU of the water pixels (value 1) of two masks of the same grid, read by blocks."""
    import rasterio

    inter = union = 0
    with rasterio.open(a) as da, rasterio.open(b) as db:
        for _, window in da.block_windows(1):
            wa, wb = da.read(1, window=window) == 1, db.read(1, window=window) == 1
            inter += int(np.count_nonzero(wa & wb))
            union += int(np.count_nonzero(wa | wb))
    return inter / union if union else 1.0


def scenes(args, workdir: Path) -> list[tuple[str, Path, Path]]:
    """(label, scene, prompts): the README demo, then the synthetic sizes."""
    from segment_benchmark import write_prompts, write_scene

    out = [("README demo (riverside_rgb)", REPO / DEMO[0], REPO / DEMO[1])] if args.demo else []
    for size in args.sizes:
        scene = workdir / f"synthetic_{size}.tif"
        prompts = workdir / f"synthetic_{size}_prompts.geojson"
        write_scene(scene, size)
        write_prompts(prompts, size, args.prompt_every)
        out.append((f"synthetic {size}² (every {args.prompt_every}th lake)", scene, prompts))
    return out


def summarise(label: str, runs: list[dict], paths: list[str]) -> dict:
    """Medians per path, IoU against the first fp32 run, and the speed-ups over fp32."""
    ref = next(r for r in runs if r["path"] == "fp32")["mask"]
    for r in runs:
        r["iou_vs_fp32"] = mask_iou(ref, r["mask"])
    med = {}
    for path in paths:
        mine = [r for r in runs if r["path"] == path]
        keys = ("wall_s", "run_s", "model_load_s", "encoder_s", "encoder_s_per_tile",
                "decode_s", "decoder_share", "outside_encoder_share", "load_before",
                "load_after")
        med[path] = {k: statistics.median(r[k] for r in mine) for k in keys}
        med[path]["iou_vs_fp32_min"] = min(r["iou_vs_fp32"] for r in mine)
        med[path]["resolved"] = f"{mine[0]['runtime']}-{mine[0]['precision']}"
        med[path]["runs"] = len(mine)
        med[path]["contended_runs"] = sum(r["contended"] for r in mine)
    fp32 = [r for r in runs if r["path"] == "fp32"]
    speedups = {}
    for path in paths[1:]:  # each against the fp32 run of the same round (interleaved)
        mine = [r for r in runs if r["path"] == path]
        speedups[path] = {
            f"speedup_{k}": statistics.median(a[f"{k}_s"] / b[f"{k}_s"]
                                              for a, b in zip(fp32, mine, strict=False))
            for k in ("wall", "run", "encoder")
        }
    return {
        "scene": label, "tiles_encoded": runs[0]["tiles_encoded"],
        "prompt_decodes": runs[0]["prompt_decodes"], "median": med,
        **speedups.get("auto", {}), "speedups": speedups,
        "runs": runs,
    }


def report(s: dict) -> str:
    """One block per scene: a row per path and the speed-ups."""
    lines = [f"{s['scene']}: {s['tiles_encoded']} tiles encoded, {s['prompt_decodes']} prompt "
             "decodes"]
    lines.append("  path           resolved        wall s   run s  load s  enc s/tile  decoder  "
                 "outside enc  IoU vs fp32  loadavg")
    for path, m in s["median"].items():
        lines.append(
            f"  {path:14s} {m['resolved']:14s} {m['wall_s']:7.1f} {m['run_s']:7.1f} "
            f"{m['model_load_s']:6.1f} {m['encoder_s_per_tile']:11.2f} "
            f"{100 * m['decoder_share']:7.1f}% {100 * m['outside_encoder_share']:10.1f}% "
            f"{m['iou_vs_fp32_min']:12.4f}  {m['load_before']:.1f}-{m['load_after']:.1f}"
            + (f"  CONTENDED ({m['contended_runs']} of {m['runs']} runs above "
               f"{cores()} cores)" if m["contended_runs"] else "")
        )
    for path, sp in s["speedups"].items():
        lines.append(
            f"  {path} vs fp32 (median of interleaved rounds): {sp['speedup_wall']:.2f}x end to "
            f"end (wall), {sp['speedup_run']:.2f}x without model load, "
            f"{sp['speedup_encoder']:.2f}x encoder"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[4096],
                        help="synthetic scene sizes (none: the demo only)")
    parser.add_argument("--prompt-every", type=int, default=4, help="prompt every N-th lake")
    parser.add_argument("--no-demo", dest="demo", action="store_false",
                        help="skip the README demo")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path and scene")
    parser.add_argument("--paths", nargs="+", default=["fp32", "auto"], choices=list(PATHS),
                        help="encoder paths to run, interleaved; fp32 (the reference) first")
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--workdir", type=Path, help="where scenes and outputs go [tmp]")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()

    from geofloodsam.model.precision import resolve_encoder

    plan = resolve_encoder("auto", "auto", "cpu")
    print(f"CPU: {cpu_model()}")
    print(f"auto resolves to {plan.signature} ({plan.reason}); load average at start "
          f"{os.getloadavg()}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="precision_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for n, (label, scene, prompts) in enumerate(scenes(args, workdir)):
        if n == 0:  # a warm-up: converts the OpenVINO graphs once (cached on disk)
            run_segment(scene, prompts, workdir / "warmup", "auto", args)
        runs = []
        paths = ["fp32", *[p for p in args.paths if p != "fp32"]]
        for rep in range(args.repeats):
            for path in paths:
                runs.append(run_segment(scene, prompts, workdir / f"s{n}_{path}_{rep}", path,
                                        args))
        summary = summarise(label, runs, paths)
        results.append(summary)
        print(report(summary), flush=True)
    print(f"load average at the end {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "auto": plan.signature,
                                         "results": results}, indent=1))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
