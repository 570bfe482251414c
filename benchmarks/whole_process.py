"""Whole-process timings of ``geofloodsam segment``: interleaved, medians and min-max, load.

Each *variant* is ``LABEL[@TREE]=ARGS``: the ``segment`` options to add (``ARGS``), run
from the source tree ``TREE`` (its ``geofloodsam`` on ``PYTHONPATH``; default: this
repository), so that two commits or two encoder paths can be compared on one machine:

    python benchmarks/whole_process.py --scene demo --repeats 3 \\
        --variant "auto=--precision auto --runtime auto" \\
        --variant "fp32=--precision fp32 --runtime torch"
    python benchmarks/whole_process.py --scene file:CHIP.tif --repeats 5 \\
        --variant "index=--method index" --variant "index-before@../old=--method index"

Scenes (``--scene``, several allowed): ``demo`` (the README demo: ``riverside_rgb.tif`` with
its EPSG:4326 prompts), ``synthetic:SIZE`` (the promptless synthetic scene of
``segment_benchmark.py``: round lakes, RGB uint8, no prompts) and ``file:PATH`` (any raster,
promptless).

Every run is a fresh process (``first_encode_hook.py``: the command line itself, which also
notes when the first tile's encode starts). Runs are interleaved: each round runs every
variant once, the order reversed every other round; ``--warmup`` rounds before are not
counted (they fill the OpenVINO cache and the page cache). Printed per scene and variant:
median and [min-max] of the wall time of the whole process, the time from process start to
the first encode, the phases of ``run.json`` (model load, encoder, prompt and tile decodes,
propagation, stitch + write, vectorise), the time outside the run (wall minus run.json's
total: interpreter start and imports, then the exit after the command returned), peak RSS
and CPU seconds (``wait4``), the mask IoU against the first variant's first run, and the
load average before each run, with a warning and the label ``contended`` when it exceeds
the core count (``machine_load.py``). Ratios are the medians [min-max] of each round's
ratio to the first variant (interleaved rounds share the machine's state).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from machine_load import check_quiet, cores, load_average  # noqa: E402

DEMO = ("sample_tiles/riverside_rgb.tif", "sample_tiles/riverside_rgb_prompts_4326.geojson")
#: run.json timings reported (key -> column name)
PHASES = {
    "model_load_s": "model load", "encoder_s": "encoder", "decode_s": "decodes",
    "propagate_s": "propagation", "stitch_write_s": "stitch+write",
    "vectorize_s": "vectorise", "read_s": "read tiles",
}


@dataclass
class Variant:
    label: str
    tree: Path
    args: list[str]

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``LABEL[@TREE]=ARGS``."""
        head, _, args = text.partition("=")
        label, _, tree = head.partition("@")
        return cls(label.strip(), Path(tree).resolve() if tree else REPO, args.split())


def scene_inputs(spec: str, workdir: Path) -> tuple[str, Path, Path | None]:
    """(label, raster, prompts or None) of a ``--scene``."""
    if spec == "demo":
        return "README demo", REPO / DEMO[0], REPO / DEMO[1]
    kind, _, value = spec.partition(":")
    if kind == "synthetic":
        from segment_benchmark import write_scene

        size = int(value)
        path = workdir / f"synthetic_{size}.tif"
        if not path.exists():
            write_scene(path, size)
        return f"synthetic {size}² promptless", path, None
    if kind == "file":
        return Path(value).name, Path(value).resolve(), None
    raise SystemExit(f"unknown --scene {spec!r}: demo, synthetic:SIZE or file:PATH")


def run_once(variant: Variant, raster: Path, prompts: Path | None, out: Path,
             checkpoint: str | None) -> dict:
    """One whole process; its wall time, first encode, run.json phases, RSS, CPU time."""
    shutil.rmtree(out, ignore_errors=True)
    mark, done = out.with_suffix(".first_encode"), out.with_suffix(".done")
    mark.unlink(missing_ok=True)
    done.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / "first_encode_hook.py"), "segment", str(raster),
           "-o", str(out), "-q", *variant.args]
    if prompts is not None:
        cmd += ["--prompts", str(prompts)]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    env = {**os.environ, "PYTHONPATH": str(variant.tree),
           "GEOFLOODSAM_BENCH_FIRST_ENCODE": str(mark), "GEOFLOODSAM_BENCH_DONE": str(done)}
    load0, quiet = check_quiet(f"{variant.label} on {raster.name}")
    started_epoch = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=variant.tree, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    ended_epoch = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    record = json.loads(next(out.glob("*_run.json")).read_text())
    t = record["timings"]
    first = float(mark.read_text()) - started_epoch if mark.exists() else None
    exit_s = ended_epoch - float(done.read_text())
    return {
        "variant": variant.label, "wall_s": wall, "first_encode_s": first,
        "run_s": t["total_s"], "outside_run_s": wall - t["total_s"], "exit_s": exit_s,
        "start_s": wall - t["total_s"] - exit_s,
        **{k: t.get(k, 0.0) for k in PHASES},
        "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
        "tiles_encoded": record["tiles"]["encoded"],
        "prompt_decodes": record["tiles"]["prompt_decodes"],
        "resolved": (f"{record['model'].get('runtime')}-{record['model'].get('precision')}"
                     if record["model"].get("model") else "no model"),
        "load_before": load0, "load_after": load_average(), "quiet": quiet and
        load_average() <= cores(), "mask": str(next(out.glob("*_mask.tif"))),
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


def spread(values: list[float | None], fmt: str = "{:.2f}") -> str:
    """``median [min-max]`` (or ``-`` when not measured)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    med = statistics.median(vals)
    return f"{fmt.format(med)} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"


def summarise(label: str, runs: list[dict], variants: list[Variant]) -> dict:
    """Per variant: medians and ranges; per round: ratios to the first variant."""
    ref = runs[0]["mask"]
    for r in runs:
        r["iou_vs_first"] = mask_iou(ref, r["mask"])
    out = {"scene": label, "variants": {}, "ratios": {}}
    base = [r for r in runs if r["variant"] == variants[0].label]
    for v in variants:
        mine = [r for r in runs if r["variant"] == v.label]
        keys = ["wall_s", "first_encode_s", "run_s", "outside_run_s", "start_s", "exit_s",
                *PHASES, "peak_rss_mb",
                "cpu_s", "load_before", "load_after"]
        out["variants"][v.label] = {
            **{k: spread([r[k] for r in mine]) for k in keys},
            "resolved": mine[0]["resolved"], "tiles_encoded": mine[0]["tiles_encoded"],
            "prompt_decodes": mine[0]["prompt_decodes"],
            "iou_vs_first_min": min(r["iou_vs_first"] for r in mine),
            "contended_runs": sum(not r["quiet"] for r in mine), "runs": len(mine),
        }
        if v is not variants[0]:
            out["ratios"][v.label] = {
                k: spread([b[k] / r[k] for b, r in zip(base, mine, strict=True)
                           if b[k] and r[k]], "{:.2f}")
                for k in ("wall_s", "first_encode_s", "encoder_s", "peak_rss_mb")
            }
    return out


def report(s: dict) -> str:
    """One block per scene."""
    lines = [f"== {s['scene']}   (median [min-max] of the rounds; seconds, MB)"]
    for label, m in s["variants"].items():
        lines.append(
            f"  {label} ({m['resolved']}, {m['tiles_encoded']} tiles encoded, "
            f"{m['prompt_decodes']} prompt decodes; {m['runs']} runs, "
            f"{m['contended_runs']} contended; mask IoU vs first >= {m['iou_vs_first_min']:.4f})"
        )
        lines.append(f"    wall {m['wall_s']}   first encode {m['first_encode_s']}   run.json "
                     f"total {m['run_s']}   outside the run {m['outside_run_s']} (start + "
                     f"imports {m['start_s']}, exit {m['exit_s']})")
        lines.append("    " + "   ".join(f"{name} {m[k]}" for k, name in PHASES.items()))
        lines.append(f"    peak RSS {m['peak_rss_mb']}   CPU s {m['cpu_s']}   load average "
                     f"before {m['load_before']} after {m['load_after']}")
    for label, r in s["ratios"].items():
        lines.append(f"  first variant / {label} (per round): wall {r['wall_s']}x   first "
                     f"encode {r['first_encode_s']}x   encoder {r['encoder_s']}x   "
                     f"peak RSS {r['peak_rss_mb']}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", action="append", default=[],
                        help="demo, synthetic:SIZE or file:PATH (repeatable) [demo]")
    parser.add_argument("--variant", action="append", default=[], type=Variant.parse,
                        help="LABEL[@TREE]=SEGMENT OPTIONS (repeatable; the first is the base)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--checkpoint", help="MobileSAM checkpoint [default: registry]")
    parser.add_argument("--workdir", type=Path, help="scenes and outputs [a temporary folder]")
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    args = parser.parse_args()
    variants = args.variant or [Variant.parse("auto=--precision auto --runtime auto"),
                                Variant.parse("fp32=--precision fp32 --runtime torch")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="whole_process_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{cores()} cores; load average at start {os.getloadavg()}", flush=True)
    results = []
    for n, spec in enumerate(args.scene or ["demo"]):
        label, raster, prompts = scene_inputs(spec, workdir)
        runs = []
        for rnd in range(args.warmup + args.repeats):
            order = variants if rnd % 2 == 0 else variants[::-1]
            for v in order:
                r = run_once(v, raster, prompts, workdir / f"s{n}_{v.label}_{rnd}",
                             args.checkpoint)
                r["round"] = rnd
                if rnd >= args.warmup:
                    runs.append(r)
        runs.sort(key=lambda r: (r["round"], [v.label for v in variants].index(r["variant"])))
        summary = summarise(label, runs, variants)
        summary["runs"] = runs
        results.append(summary)
        print(report(summary), flush=True)
    print(f"load average at the end {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"cores": cores(), "results": results}, indent=1))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
