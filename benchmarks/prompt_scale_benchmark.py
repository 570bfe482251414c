"""Benchmark ``segment`` with many point prompts: time and peak RSS for N points, one object each.

The scene is ``segment_benchmark.py``'s synthetic RGB GeoTIFF (round lakes of radius 420 px on
a 2048-px grid, EPSG:32614, 1 m pixels), written by a subprocess; the N points are spread at
random (seed 0) over the whole scene, on lakes and on land alike, each its own object. The
run is ``segment`` with the real MobileSAM weights (pretrained decoder, tiles 1024, overlap
256) in a *fresh subprocess* that reports its own peak RSS (``resource.getrusage``), with the
model loaded before the run (its load time and the imports are printed apart, not counted).
Target (issue 13): 10,000 points in a 4096² scene in under 5 minutes and 1.5 GB on the CPU.
Also printed: the CPU seconds of the run (user + system) and the 1-minute load average at its
end, since wall time on a shared machine depends on what else runs.

    python benchmarks/prompt_scale_benchmark.py --points 1000 10000 \
        --checkpoint ../shared/models/mobile_sam.pt
    python benchmarks/prompt_scale_benchmark.py --points 1000 --profile /tmp/prof.txt ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segment_benchmark import CRS, ORIGIN, write_scene  # noqa: E402


def write_points(path: Path, size: int, n: int, seed: int = 0) -> None:
    """``n`` random points (one object each) over a ``size`` x ``size`` scene at ORIGIN."""
    import geopandas as gpd

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.5, size - 0.5, (n, 2))
    xs, ys = ORIGIN[0] + xy[:, 0], ORIGIN[1] - xy[:, 1]
    gpd.GeoDataFrame(geometry=gpd.points_from_xy(xs, ys), crs=CRS).to_file(path)


def child(args: argparse.Namespace) -> None:
    """Run segment once (optionally under cProfile) and print one JSON line."""
    import resource

    t0 = time.perf_counter()
    import geopandas  # noqa: F401
    import pyogrio  # noqa: F401

    from geofloodsam.model.sam import load_model
    from geofloodsam.segmentation.pipeline import segment

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_model(  # the reference encoder path (fp32, torch)
        "vit_t", checkpoint=args.checkpoint, decoder="pretrained", device="cpu",
        precision="fp32", runtime="torch",
    )
    load_s = time.perf_counter() - t0

    def run():
        return segment(
            args.scene, args.prompts, args.outdir, sam_model=model, quiet=True,
            tile_size=1024, overlap=256,
        )

    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        res = profiler.runcall(run)
        with open(args.profile, "w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("cumulative").print_stats(60)
    else:
        res = run()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rec = res.record
    t = rec["timings"]
    print(json.dumps({
        "points": rec["prompts"]["features"],
        "objects": rec["prompts"]["objects"],
        "size": rec["scene"]["width"],
        "seconds": wall,
        "cpu_s": cpu_s,
        "load_avg_1min": os.getloadavg()[0],
        "encoder_s": t["encoder_s"],
        "decode_s": t["decode_s"],
        "propagate_s": t["propagate_s"],
        "tile_store_s": t["tile_store_s"],
        "stitch_write_s": t["stitch_write_s"],
        "vectorize_s": t["vectorize_s"],
        "tiles_encoded": rec["tiles"]["encoded"],
        "tile_decodes": rec["tiles"]["decoded"],
        "prompt_decodes": rec["tiles"]["prompt_decodes"],
        "waves": rec["tiles"]["waves"],
        "polygons": rec["water"]["polygons"],
        "import_s": import_s,
        "model_load_s": load_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--profile", help="write a cProfile summary of the run to this file")
    parser.add_argument("--workdir", type=Path, help="where the scene and outputs go [tmp]")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--prompts", help=argparse.SUPPRESS)
    parser.add_argument("--outdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.write:
        write_scene(Path(args.scene), args.size)
        for n in args.points:
            write_points(Path(args.prompts) / f"points_{n}.gpkg", args.size, n)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gfs-prompt-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    scene = workdir / f"synthetic_{args.size}.tif"
    subprocess.run(
        [sys.executable, __file__, "--write", "--size", str(args.size), "--scene", str(scene),
         "--prompts", str(workdir), "--points", *map(str, args.points)],
        check=True,
    )
    results = []
    for n in args.points:
        cmd = [sys.executable, __file__, "--child", "--scene", str(scene), "--prompts",
               str(workdir / f"points_{n}.gpkg"), "--outdir", str(workdir / f"out_{n}")]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        if args.profile:
            cmd += ["--profile", args.profile]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{r['points']} points ({r['objects']} objects) in {r['size']}²: {r['seconds']:.1f} s "
            f"(CPU {r['cpu_s']:.1f} s, load average {r['load_avg_1min']:.1f}), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB; encoder {r['encoder_s']:.1f} s, decoder "
            f"{r['decode_s']:.1f} s, propagation {r['propagate_s']:.1f} s, tile store "
            f"{r['tile_store_s']:.1f} s, stitch+write {r['stitch_write_s']:.1f} s, vectorize "
            f"{r['vectorize_s']:.1f} s; {r['tiles_encoded']} tiles encoded, {r['tile_decodes']} "
            f"tile decodes, {r['prompt_decodes']} prompt decodes, {r['waves']} waves; imports "
            f"{r['import_s']:.1f} s and model load {r['model_load_s']:.1f} s not counted",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"scene and outputs in {workdir}")


if __name__ == "__main__":
    main()
