"""Prove a change of structure left behaviour alone: run a fixed set of ``segment`` jobs with
one checkout, again with another, and compare every output.

    # with the old code (e.g. a worktree of the commit before the change):
    PYTHONPATH=/path/to/old python benchmarks/identical_outputs.py record /tmp/proof/before
    # with the new code:
    python benchmarks/identical_outputs.py record /tmp/proof/after
    python benchmarks/identical_outputs.py compare /tmp/proof/before /tmp/proof/after

The jobs (``JOBS``): both sample scenes with their shipped prompts, ``delta_4band``
promptless, one Sentinel-1 chip (also read as ``--sensor sar``), the Sentinel-2 chip and a
NAIP tile (promptless, with ``auto`` and with a method that runs SAM too), and the README
demo on a local Dask cluster.
``compare`` checks masks bit for bit (pixels, CRS, transform, nodata), the GeoPackages'
features in order (geometry WKB and attributes), and every ``run.json`` value except the
times, the creation date and, on Dask, the task placement (``VOLATILE``). It prints one
line per file and exits 1 when anything differs or is missing. The data folder defaults to
``../shared/data`` (``--data DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_tiles"

#: name -> (scene, extra arguments); scenes under ``data:`` are read from the data folder
JOBS: dict[str, tuple[str, list[str]]] = {
    "riverside_prompted": (
        "sample_tiles/riverside_rgb.tif",
        ["--prompts", "sample_tiles/riverside_rgb_prompts_4326.geojson"],
    ),
    "delta_prompted": (
        "sample_tiles/delta_4band.tif",
        ["--prompts", "sample_tiles/delta_4band_prompts_utm.geojson"],
    ),
    "delta_promptless": ("sample_tiles/delta_4band.tif", []),
    "s1_auto": ("data:sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif", []),
    "s1_fused": ("data:sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif", ["--method", "fused"]),
    "s1_as_sar": ("data:sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif", ["--sensor", "sar"]),
    "naip_auto": ("data:geo/naip-north-dakota/m_4709963_se_14_1_20140720.tif", []),
    "naip_sam": (
        "data:geo/naip-north-dakota/m_4709963_se_14_1_20140720.tif",
        ["--method", "sam"],
    ),
    "s2_auto": ("data:sen1floods11/S2Hand/Spain_7370579_S2Hand.tif", []),
    "s2_fused": ("data:sen1floods11/S2Hand/Spain_7370579_S2Hand.tif", ["--method", "fused"]),
    "riverside_dask": (
        "sample_tiles/riverside_rgb.tif",
        ["--prompts", "sample_tiles/riverside_rgb_prompts_4326.geojson", "--workers", "2"],
    ),
}

#: run.json keys that differ between any two runs: times, the date, and on Dask where the
#: tasks went (the scheduler's port, which worker ran what, how many tiles a worker that had
#: not kept an embedding encoded again)
VOLATILE = {
    "created", "timings", "tile_tasks", "by_worker", "total_s", "seconds", "address",
    "tiles_reencoded",
}


def record(out: Path, data: Path, only: list[str]) -> int:
    """Run every job (or those named in ``only``) into ``out/<job>/``."""
    failed = 0
    for name, (scene, extra) in JOBS.items():
        if only and name not in only:
            continue
        path = data / scene[5:] if scene.startswith("data:") else ROOT / scene
        extra = [str(ROOT / a) if a.startswith("sample_tiles/") else a for a in extra]
        command = [sys.executable, "-m", "geofloodsam", "segment", str(path), *extra]
        command += ["-o", str(out / name), "--quiet"]
        print(f"{name}: {' '.join(command[3:])}", flush=True)
        # run outside the repository, so that PYTHONPATH (not the current folder) decides
        # which checkout of geofloodsam is imported
        out.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(command, cwd=out, env=os.environ.copy(), check=False)
        failed += result.returncode != 0
    return 1 if failed else 0


def steady(value: object) -> object:
    """``value`` without the keys that change from run to run."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def same_run(a: Path, b: Path) -> bool:
    """True when both run.json files agree on everything but times and dates."""
    return steady(json.loads(a.read_text())) == steady(json.loads(b.read_text()))


def compare(dir_a: Path, dir_b: Path) -> int:
    """Compare masks, polygons and run.json of two recordings; 1 when any differs."""
    sys.path.insert(0, str(Path(__file__).parent))
    from compare_outputs import same_layer, same_pixels

    checks = {"_mask.tif": same_pixels, "_flood.gpkg": same_layer, "_run.json": same_run}
    files = sorted(p for p in dir_a.rglob("*") if p.name.endswith(tuple(checks)))
    ok = bool(files)
    for a in files:
        b = dir_b / a.relative_to(dir_a)
        check = next(f for suffix, f in checks.items() if a.name.endswith(suffix))
        verdict = "missing" if not b.exists() else "same" if check(a, b) else "DIFFERS"
        ok &= verdict == "same"
        print(f"{verdict:8s} {a.relative_to(dir_a)}")
    print(f"{len(files)} files: {'all the same' if ok else 'NOT all the same'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    rec.add_argument("--only", nargs="*", default=[], choices=sorted(JOBS))
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.action == "record":
        return record(args.out, args.data, args.only)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
