"""Benchmark ``geofloodsam segment`` on large synthetic tiled GeoTIFFs.

For each size, a subprocess writes a synthetic RGB scene (streamed window by window, tiled
GeoTIFF, EPSG:32614, 1 m pixels) with round lakes on a 2048-px grid and a GeoJSON of points
on every ``--prompt-every``-th lake; then ``segment`` runs in a *fresh subprocess* that
reports its own peak RSS (``resource.getrusage``; Linux keeps the high-water mark across
fork + exec, so the parent that forks it stays small and never touches the scene).

Prints per size: tiles encoded, seconds, Mpx/s, seconds in the encoder vs everything else
(broken down: decoder, stitch + write, vectorise, reading tiles, propagation, tile store,
rest), and peak RSS. Python imports and model loading are one-off process costs: timed
apart, printed, not counted in the run. Targets: peak RSS flat in scene size and < 1.5 GB
at 16384²; time outside the encoder < 15 % of the run.

    python benchmarks/segment_benchmark.py --sizes 4096            # quick
    python benchmarks/segment_benchmark.py --sizes 4096 16384      # the full run
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAKE_SPACING = 2048
LAKE_RADIUS = 420
BAND = 512
CRS = "EPSG:32614"
ORIGIN = (400000.0, 5300000.0)


def lake_centres(size: int) -> list[tuple[float, float]]:
    """Centres (x, y) of the lakes of a ``size`` x ``size`` scene."""
    grid = np.arange(LAKE_SPACING // 2, size, LAKE_SPACING, dtype=np.float64)
    return [(x + 0.5, y + 0.5) for y in grid for x in grid]


def scene_rows(size: int, y0: int, y1: int) -> np.ndarray:
    """(3, y1 - y0, size) uint8 rows of the scene: fields, texture, dark lakes."""
    yy, xx = np.mgrid[y0:y1, 0:size].astype(np.float32)
    field = ((xx // 300) * 7 + (yy // 220) * 13) % 5
    texture = 8 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    land = np.stack([90 + 18 * field, 110 + 10 * field, 60 + 8 * field]) + texture
    water = np.zeros((y1 - y0, size), bool)
    for cx, cy in lake_centres(size):
        if cy + LAKE_RADIUS < y0 or cy - LAKE_RADIUS > y1:
            continue
        water |= (xx - cx) ** 2 + (yy - cy) ** 2 <= LAKE_RADIUS**2
    lake = np.stack([25 + 0 * xx, 45 + 0 * xx, 70 + 0 * xx]) + texture / 4
    return np.clip(np.where(water[None], lake, land), 0, 255).astype(np.uint8)


def write_scene(path: Path, size: int, origin: tuple[float, float] = ORIGIN) -> None:
    """Write the scene (top-left corner at ``origin``) window by window, never whole."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
        "crs": CRS, "transform": from_origin(*origin, 1.0, 1.0), "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as ds:
        for y0 in range(0, size, BAND):
            y1 = min(size, y0 + BAND)
            ds.write(scene_rows(size, y0, y1), window=Window(0, y0, size, y1 - y0))


def write_prompts(
    path: Path, size: int, every: int, origins: list[tuple[float, float]] | None = None
) -> int:
    """Points on every ``every``-th lake of the scenes at ``origins``; returns how many."""
    import geopandas as gpd
    from shapely.geometry import Point

    pts = lake_centres(size)[::every]
    geoms = [Point(ox + x, oy - y) for ox, oy in origins or [ORIGIN] for x, y in pts]
    gpd.GeoDataFrame(geometry=geoms, crs=CRS).to_file(path)
    return len(geoms)


def _vm_hwm_mb() -> float | None:
    """Peak RSS of this process image from /proc (Linux), a cross-check of getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child(args: argparse.Namespace) -> None:
    """Run segment once and print one JSON line (in a fresh process)."""
    import resource

    t0 = time.perf_counter()
    from geofloodsam.model.sam import load_model
    from geofloodsam.segmentation.pipeline import segment

    import_s = time.perf_counter() - t0
    # One-off process costs, like loading the model, are timed apart from the run: also the
    # vector stack (geopandas, pandas, pyogrio) that segment imports when it reads prompts.
    t0 = time.perf_counter()
    import geopandas  # noqa: F401
    import pyogrio  # noqa: F401

    vector_import_s = time.perf_counter() - t0
    import_s += vector_import_s
    t0 = time.perf_counter()
    model = load_model(  # the reference encoder path (fp32, torch)
        "vit_t", checkpoint=args.checkpoint, device=args.device, precision="fp32", runtime="torch"
    )
    load_s = time.perf_counter() - t0
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = segment(
        args.scene, args.prompts, args.outdir, tile_size=args.tile_size, overlap=args.overlap,
        sam_model=model, quiet=True,
    )
    rec = res.record
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hwm = _vm_hwm_mb()
    t = rec["timings"]
    print(json.dumps({
        "size": rec["scene"]["width"],
        "device": str(model.device),
        "tiles_grid": rec["tiles"]["grid"],
        "tiles_encoded": rec["tiles"]["encoded"],
        "tile_decodes": rec["tiles"]["decoded"],
        "waves": rec["tiles"]["waves"],
        "seconds": t["total_s"],
        "model_load_s": load_s,
        "import_s": import_s,
        "vector_import_s": vector_import_s,
        "encoder_s": t["encoder_s"],
        "decode_s": t["decode_s"],
        "other_s": t["total_s"] - t["encoder_s"],
        "outside_model_s": t["total_s"] - t["encoder_s"] - t["decode_s"],
        "propagate_s": t["propagate_s"],
        "tile_store_s": t["tile_store_s"],
        "stitch_write_s": t["stitch_write_s"],
        "vectorize_s": t["vectorize_s"],
        "read_s": t["read_s"],
        "rss_after_model_mb": rss_model,
        "peak_rss_mb": peak,
        "vm_hwm_mb": hwm,
        "water_km2": rec["water"]["area_m2"] / 1e6,
        "polygons": rec["water"]["polygons"],
    }))


def writer(args: argparse.Namespace) -> None:
    """Write one scene and its prompts (in a subprocess); print the number of prompts."""
    write_scene(Path(args.scene), args.size)
    print(write_prompts(Path(args.prompts), args.size, args.prompt_every))


def run_size(size: int, args: argparse.Namespace, workdir: Path) -> dict:
    """Write the scene and prompts of ``size``, run the child, return its figures."""
    scene = workdir / f"synthetic_{size}.tif"
    prompts = workdir / f"synthetic_{size}_prompts.geojson"
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--write", "--size", str(size), "--scene", str(scene),
         "--prompts", str(prompts), "--prompt-every", str(args.prompt_every)],
        check=True, capture_output=True, text=True,
    )
    n_prompts = int(out.stdout.split()[-1])
    write_s = time.perf_counter() - t0
    cmd = [
        sys.executable, __file__, "--child", "--scene", str(scene), "--prompts", str(prompts),
        "--outdir", str(workdir / f"out_{size}"), "--tile-size", str(args.tile_size),
        "--overlap", str(args.overlap), "--device", args.device,
    ]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update({"prompts": n_prompts, "scene_write_s": write_s})
    if not args.keep:
        scene.unlink()
    return result


def _rest(r: dict) -> float:
    """Seconds outside the model not in a named step (planning, stretch, prompts, outputs)."""
    named = ("stitch_write_s", "vectorize_s", "read_s", "propagate_s", "tile_store_s")
    return r["outside_model_s"] - sum(r[k] for k in named)


def report(r: dict) -> str:
    """One human-readable block per size."""
    mpx = r["size"] ** 2 / 1e6
    return (
        f"{r['size']}x{r['size']} ({mpx:.0f} Mpx, {r['device']}): {r['prompts']} prompts, "
        f"{r['tiles_encoded']}/{r['tiles_grid']} tiles encoded ({r['tile_decodes']} tile "
        f"decodes, {r['waves']} waves)\n"
        f"  {r['seconds']:.1f} s ({mpx / r['seconds']:.2f} Mpx/s; imports "
        f"{r['import_s']:.1f} s (geopandas + pyogrio {r['vector_import_s']:.2f} s) and model "
        f"load {r['model_load_s']:.1f} s not counted)\n"
        f"  encoder {r['encoder_s']:.1f} s, everything else {r['other_s']:.1f} s "
        f"({100 * r['other_s'] / r['seconds']:.1f} %): decoder {r['decode_s']:.1f} s, "
        f"stitch+write {r['stitch_write_s']:.1f} s, vectorize {r['vectorize_s']:.1f} s, "
        f"reading tiles {r['read_s']:.1f} s, propagation {r['propagate_s']:.1f} s, tile store "
        f"{r['tile_store_s']:.1f} s, rest {_rest(r):.1f} s\n"
        f"  peak RSS {r['peak_rss_mb']:.0f} MB (VmHWM {r['vm_hwm_mb'] or 0:.0f} MB; after "
        f"loading the model: "
        f"{r['rss_after_model_mb']:.0f} MB); water {r['water_km2']:.3f} km², "
        f"{r['polygons']} polygons"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096])
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=256)
    parser.add_argument("--prompt-every", type=int, default=4, help="prompt every N-th lake")
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", type=Path, help="where scenes and outputs go [tmp]")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic scenes")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--prompts", help=argparse.SUPPRESS)
    parser.add_argument("--outdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.write:
        writer(args)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gfs-segment-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        result = run_size(size, args, workdir)
        results.append(result)
        print(report(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.workdir or args.keep:
        print(f"outputs in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
