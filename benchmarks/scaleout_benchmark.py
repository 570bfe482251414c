"""Benchmark ``geofloodsam segment`` on many scenes: in-process vs local Dask clusters.

Writes ``--scenes`` synthetic RGB scenes of ``--size`` px side by side (the scenes of
``segment_benchmark.py``: round lakes on a 2048-px grid, 1 m pixels, EPSG:32614) and one
GeoJSON with a point on every ``--prompt-every``-th lake of every scene (``--promptless``:
none). The same multi-scene job then runs in-process and on a local cluster of each
``--workers`` count, every run in a *fresh subprocess* (the client), which reports the
wall-clock seconds of its ``segment`` call (local cluster start and model loading on the
workers included) and its own peak RSS (``resource.getrusage``: the worker processes are
not the client's). Prints seconds, speed-up over in-process, the client's peak RSS, and
whether each run's masks are bit-identical to the in-process run's.

    python benchmarks/scaleout_benchmark.py --checkpoint ../shared/models/mobile_sam.pt
    python benchmarks/scaleout_benchmark.py --scenes 8 --size 4096 --workers 1 2 4 8

Masks are bit-identical when every run computes a tile with the same number of torch
threads: pass ``--threads 1`` to compare like with like; by default each run uses what
``segment`` picks (all cores in-process, a worker's share of the cores on Dask).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segment_benchmark import ORIGIN, write_prompts, write_scene


def scene_origins(n: int, size: int) -> list[tuple[float, float]]:
    """Top-left corners of ``n`` scenes of ``size`` m placed side by side, west to east."""
    return [(ORIGIN[0] + k * size, ORIGIN[1]) for k in range(n)]


def writer(args: argparse.Namespace) -> None:
    """Write the scenes and the prompts (in a subprocess); print the scene paths."""
    folder = Path(args.workdir)
    origins = scene_origins(args.scenes, args.size)
    paths = []
    for k, origin in enumerate(origins):
        path = folder / f"scene_{k}.tif"
        write_scene(path, args.size, origin)
        paths.append(str(path))
    if not args.promptless:
        write_prompts(folder / "prompts.geojson", args.size, args.prompt_every, origins)
    print(json.dumps(paths))


def child(args: argparse.Namespace) -> None:
    """Run the job once (in a fresh process) and print one JSON line of figures."""
    import resource

    from geofloodsam.segmentation.pipeline import segment

    scenes = json.loads(args.scene_paths)
    prompts = None if args.promptless else Path(args.workdir) / "prompts.geojson"
    t0 = time.perf_counter()
    results = segment(
        scenes, prompts, args.outdir, checkpoint=args.checkpoint, decoder="pretrained",
        device=args.device, tile_size=args.tile_size, overlap=args.overlap, quiet=True,
        workers=args.run_workers or None, threads=args.threads,
    )
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    executor = results[0].record["executor"]
    print(json.dumps({
        "workers": args.run_workers,
        "seconds": seconds,
        "setup_s": results[0].record["timings"]["model_load_s"],
        "client_peak_rss_mb": peak,
        "tiles_encoded": sum(r.record["tiles"]["encoded"] for r in results),
        "tiles_reencoded": sum(r.record["executor"]["tiles_reencoded"] for r in results),
        "torch_threads": executor["torch_threads"],
        "masks_sha256": [hashlib.sha256(r.mask_path.read_bytes()).hexdigest() for r in results],
        "water_pixels": sum(r.record["water"]["pixels"] for r in results),
    }))


def run_config(workers: int, scenes: list[str], args: argparse.Namespace, workdir: Path) -> dict:
    """One run of the job in a fresh subprocess: in-process for ``workers`` 0."""
    cmd = [
        sys.executable, __file__, "--child", "--workdir", str(workdir), "--scene-paths",
        json.dumps(scenes), "--outdir", str(workdir / f"out_{workers}"), "--run-workers",
        str(workers), "--tile-size", str(args.tile_size), "--overlap", str(args.overlap),
        "--device", args.device,
    ]
    for flag, value in (("--checkpoint", args.checkpoint), ("--threads", args.threads)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.promptless:
        cmd.append("--promptless")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(runs: list[dict]) -> str:
    """A Markdown table: one row per run."""
    base = runs[0]
    lines = [
        "| run | seconds | speed-up | client peak RSS | tiles encoded (again) | torch threads "
        "| masks = in-process |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        name = "in-process" if r["workers"] == 0 else f"local cluster, {r['workers']} worker(s)"
        same = "yes" if r["masks_sha256"] == base["masks_sha256"] else "no"
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {base['seconds'] / r['seconds']:.2f}x | "
            f"{r['client_peak_rss_mb']:.0f} MB | {r['tiles_encoded']} "
            f"({r['tiles_reencoded']}) | {','.join(map(str, r['torch_threads']))} | {same} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=2, help="how many scenes")
    parser.add_argument("--size", type=int, default=2048, help="scene side (px)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="local cluster sizes to time (besides in-process)")
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=256)
    parser.add_argument("--prompt-every", type=int, default=1, help="prompt every N-th lake")
    parser.add_argument("--promptless", action="store_true", help="no prompts: every tile")
    parser.add_argument("--threads", type=int, help="torch threads per tile task, every run")
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, help="where scenes and outputs go [tmp]")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene-paths", help=argparse.SUPPRESS)
    parser.add_argument("--outdir", help=argparse.SUPPRESS)
    parser.add_argument("--run-workers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    role = child if args.child else writer if args.write else None
    if role is not None:  # a subprocess of the run below
        role(args)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gfs-scaleout-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--write", "--workdir", str(workdir), "--scenes",
           str(args.scenes), "--size", str(args.size), "--prompt-every", str(args.prompt_every)]
    if args.promptless:
        cmd.append("--promptless")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    scenes = json.loads(out.stdout.strip().splitlines()[-1])
    runs = []
    for workers in [0, *args.workers]:
        runs.append(run_config(workers, scenes, args, workdir))
        r = runs[-1]
        print(f"workers={workers}: {r['seconds']:.1f} s, client peak RSS "
              f"{r['client_peak_rss_mb']:.0f} MB", flush=True)
    print(report(runs))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    if args.workdir:
        print(f"outputs in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
