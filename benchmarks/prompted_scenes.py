"""Prompted ``segment`` scored against exact truth: the code before vs this checkout.

Sets (``--sets``, comma-separated):

* ``samples``: ``riverside_rgb`` and ``delta_4band`` with their shipped prompts;
* ``generated``: four more :func:`~geofloodsam.datasets.sample_scenes.synthetic_scene`
  scenes (other seeds and layouts), prompts placed by the same rule as the samples';
* ``esw``: the 10 Earth Surface Water *val* scenes written as GeoTIFFs, run at
  ``--tile-size 512 --overlap 128`` with one click per water body at its deepest interior
  pixel (the 8 largest bodies), and the same scenes promptless;
* ``esw-train``: the same on the 34 ESW *train* scenes (for tuning rules; never reported as
  a result);
* ``chips``: the Sen1Floods11 S1/S2 chips with one click per water body (every labelled
  body of at least :data:`MIN_CHIP_BODY` px, at its deepest pixel), and promptless.

Each code version runs in its own process (``PYTHONPATH`` = the checkout) with the decoder
each scene's defaults pick (loaded once per process: seconds are the ``segment`` call,
without loading the model). Printed per case and version: scene IoU, false (water) pixels,
mean per-object IoU (each object's polygons against the truth bodies under its points, or
inside its box), tiles encoded and seconds; then the mean IoU per set, and per prompted set
its ``ceiling``: the mean IoU of a map that is exactly the truth bodies the prompts point
at::

    python benchmarks/prompted_scenes.py --before ../main            # every set, both versions
    python benchmarks/prompted_scenes.py --sets samples,generated    # this checkout only
    python benchmarks/prompted_scenes.py --sets esw-train --only esw_1,esw_2 --no-promptless

``--only`` keeps the cases of those comma-separated scene names (and their promptless twins);
``--decoder`` runs every prompted case with that decoder instead of the default;
``--clicked-only`` maps the clicked bodies alone (``segment --clicked-only``); ``--keep
DIR`` keeps the scenes (``DIR/esw/...``) and each version's outputs (``DIR/<version>/<case>/``)
to render or compare them; with ``--only``, ``--png-dir DIR`` renders each prompted case: the
image, then each version's mask over it (blue: water in both, red: false water, yellow:
missed water; clicks as green rings).

``--before`` is a checkout of the code to compare with (e.g. a ``git worktree`` of main).
Every version runs every case, promptless ones too: they take no prompt path, but a version
may ship other models.
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

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"  # --data for another place
#: clicks per Earth Surface Water scene (the largest water bodies)
ESW_CLICKS = 8
#: smallest labelled chip water body that gets a click (px)
MIN_CHIP_BODY = 10
CRS = "EPSG:32633"


# --------------------------------------------------------------------------- cases
def _write_points(path: Path, points: list[tuple[float, float]], transform) -> None:
    """One object per point (pixel x, y) as GeoJSON in the raster CRS."""
    feats = []
    for k, (x, y) in enumerate(points, start=1):
        wx, wy = transform * (x, y)
        feats.append({"type": "Feature", "properties": {"label": 1, "object": k},
                      "geometry": {"type": "Point", "coordinates": [wx, wy]}})
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties":
                    {"name": "urn:ogc:def:crs:" + CRS.replace(":", "::")}}, "features": feats}))


def _body_clicks(water: np.ndarray, most: int | None, min_pixels: int = 1) -> list:
    """The deepest interior pixel of each water body (largest first, ``most`` of them)."""
    from scipy import ndimage

    from geofloodsam.datasets.truth_prompts import deepest_point

    labels, n = ndimage.label(water, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]
    order = [k + 1 for k in np.argsort(-sizes, kind="stable") if sizes[k] >= min_pixels]
    return [tuple(deepest_point(labels == k)) for k in order[:most]]


def sample_cases(work: Path) -> list[dict]:
    """The shipped sample scenes with their prompts."""
    tiles = REPO / "sample_tiles"
    return [{"set": "samples", "name": n, "image": str(tiles / f"{n}.tif"),
             "prompts": str(tiles / f"{n}_prompts_utm.geojson"),
             "truth": str(tiles / f"{n}_truth.tif"), "truth_kind": "sample"}
            for n in ("riverside_rgb", "delta_4band")]


def generated_cases(work: Path) -> list[dict]:
    """Four more synthetic scenes: other seeds, layouts and kinds."""
    import math

    from geofloodsam.datasets.sample_scenes import (
        LakeSpec,
        RiverSpec,
        SceneRecipe,
        synthetic_scene,
    )

    specs = [
        ("gen_lake_river", dict(width=2200, height=1800, seed=11, kind="rgb",
                                lake=LakeSpec(1400, 600, 600, 400, angle=0.3),
                                rivers=(RiverSpec(-30, 1300, -0.05, width=38, flood=0.6),),
                                ponds=3)),
        ("gen_two_rivers", dict(width=2000, height=1600, seed=23, kind="rgb",
                                rivers=(RiverSpec(-30, 500, 0.1, width=30, wavelength=600),
                                        RiverSpec(900, -30, math.pi / 2, width=26, flood=0.5)),
                                ponds=3)),
        ("gen_lake_4band", dict(width=2000, height=1800, seed=31, kind="4band", metres=10.0,
                                lake=LakeSpec(900, 900, 650, 450, angle=-0.2, roughness=0.15),
                                rivers=(RiverSpec(1800, -30, math.pi / 2 + 0.3, width=24),),
                                ponds=4, fields=1.5)),
        ("gen_floodplain", dict(width=2400, height=1600, seed=47, kind="rgb",
                                rivers=(RiverSpec(-30, 800, 0.0, width=44, wavelength=800,
                                                  amplitude=1.2, flood=0.7),),
                                ponds=2)),
    ]
    cases = []
    for name, spec in specs:
        files = synthetic_scene(work / "generated", name, SceneRecipe(**spec))
        cases.append({"set": "generated", "name": name, "image": str(files.image),
                      "prompts": str(files.prompts_utm), "truth": str(files.truth),
                      "truth_kind": "sample"})
    return cases


def esw_cases(work: Path, split: str = "val") -> list[dict]:
    """The ESW scenes of ``split`` as GeoTIFFs, clicked and promptless, at tile 512 / 128."""
    import csv

    import rasterio
    from affine import Affine
    from PIL import Image

    root = DATA / "earth-surface-water"
    out = work / "esw"
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    with open(root / "splits.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    for row in rows:
        rgb = np.asarray(Image.open(root / row["image"]).convert("RGB"))
        truth = np.asarray(Image.open(root / row["mask"]).convert("L")) > 127
        transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)
        h, w = truth.shape
        image = out / f"esw_{row['id']}.tif"
        profile = {"driver": "GTiff", "width": w, "height": h, "crs": CRS,
                   "transform": transform}
        with rasterio.open(image, "w", count=3, dtype="uint8", **profile) as ds:
            ds.write(np.moveaxis(rgb, -1, 0))
        truth_path = out / f"esw_{row['id']}_truth.tif"
        with rasterio.open(truth_path, "w", count=1, dtype="uint8", **profile) as ds:
            ds.write(truth.astype(np.uint8)[None])
        prompts = out / f"esw_{row['id']}_clicks.geojson"
        _write_points(prompts, _body_clicks(truth, ESW_CLICKS), transform)
        base = {"set": "esw" if split == "val" else f"esw-{split}", "image": str(image),
                "truth": str(truth_path), "truth_kind": "sample", "tile_size": 512,
                "overlap": 128}
        cases.append({**base, "name": f"esw_{row['id']}", "prompts": str(prompts)})
        cases.append({**base, "name": f"esw_{row['id']} promptless", "prompts": None})
    return cases


def chip_cases(work: Path) -> list[dict]:
    """Sen1Floods11 chips with a valid label: one click per water body, and promptless."""
    import rasterio

    root = DATA / "sen1floods11"
    out = work / "chips"
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for image in sorted(root.glob("S1Hand/*.tif")) + sorted(root.glob("S2Hand/*.tif")):
        chip, kind = image.stem.rsplit("_", 1)
        label_path = root / "LabelHand" / f"{chip}_LabelHand.tif"
        with rasterio.open(label_path) as ds:
            label = ds.read(1)
        with rasterio.open(image) as ds:
            data = ds.read(1)
            transform, crs = ds.transform, ds.crs
        if not (label == 1).any() or not np.isfinite(data).any():
            continue  # no water to click, or a chip segment refuses (all NaN)
        clicks = _body_clicks(label == 1, None, MIN_CHIP_BODY)
        prompts = out / f"{image.stem}_clicks.geojson"
        feats = [{"type": "Feature", "properties": {"label": 1, "object": k},
                  "geometry": {"type": "Point", "coordinates": list(transform * (x, y))}}
                 for k, (x, y) in enumerate(clicks, start=1)]
        prompts.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
        base = {"set": f"chips-{kind[:2].lower()}", "image": str(image), "truth": str(label_path),
                "truth_kind": "label", "crs": str(crs)}
        cases.append({**base, "name": image.stem, "prompts": str(prompts)})
        cases.append({**base, "name": f"{image.stem} promptless", "prompts": None})
    return cases


SETS = {"samples": sample_cases, "generated": generated_cases, "esw": esw_cases,
        "esw-train": lambda work: esw_cases(work, "train"), "chips": chip_cases}


# --------------------------------------------------------------------------- worker
def run_cases(cases: list[dict], out: Path) -> list[dict]:
    """Run ``segment`` on every case with this process's geofloodsam; time and count tiles."""
    import rasterio

    from geofloodsam import segment
    from geofloodsam.model.sam import load_model
    from geofloodsam.raster.sensors import detect_sensor
    from geofloodsam.water.methods import choose

    models: dict[str, object] = {}
    done = []
    for case in cases:
        with rasterio.open(case["image"]) as ds:
            sensor = detect_sensor(ds).sensor
        decoder = choose(sensor, prompted=case["prompts"] is not None).decoder
        if case["prompts"] is not None and case.get("decoder"):
            decoder = case["decoder"]
        if decoder not in models:
            models[decoder] = load_model("vit_t", decoder=decoder, precision="auto",
                                         runtime="auto")
        folder = out / case["name"].replace(" ", "_")
        t0 = time.perf_counter()
        only = {"clicked_only": True} if case.get("clicked_only") else {}  # older code: none
        result = segment(case["image"], prompts=case["prompts"], outdir=folder,
                         tile_size=case.get("tile_size", 1024), overlap=case.get("overlap", 256),
                         sam_model=models[decoder], quiet=True, **only)
        seconds = time.perf_counter() - t0
        record = result.record
        done.append({**case, "decoder": decoder, "seconds": seconds,
                     "tiles_encoded": record["tiles"]["encoded"],
                     "mask": str(result.mask_path), "polygons": str(result.gpkg_path)})
        print(f"  ran {case['name']}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return done


# --------------------------------------------------------------------------- scoring
def _truth(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """(water, valid) of a case's truth raster."""
    import rasterio

    with rasterio.open(case["truth"]) as ds:
        t = ds.read(1)
    if case["truth_kind"] == "label":
        return t == 1, t != -1
    return t == 1, t != 255


def _object_bodies(case: dict, water: np.ndarray, transform) -> dict[int, np.ndarray]:
    """Object id -> the truth water it points at (bodies under its points, or in its box)."""
    import geopandas as gpd
    from scipy import ndimage

    if case["prompts"] is None:
        return {}
    frame = gpd.read_file(case["prompts"])
    labels, _ = ndimage.label(water, structure=np.ones((3, 3), bool))
    inverse = ~transform
    bodies: dict[int, np.ndarray] = {}
    ids = frame["object"] if "object" in frame else np.full(len(frame), np.nan)
    after = int(np.nanmax(ids)) if np.isfinite(ids).any() else 0
    for k, row in frame.iterrows():
        if np.isfinite(ids[k]):
            obj = int(ids[k])
        else:  # a feature without an object id is its own object, numbered after the others
            after += 1
            obj = after
        geom = row.geometry
        body = bodies.setdefault(obj, np.zeros_like(water))
        if geom.geom_type == "Point":
            if int(row.get("label", 1)) != 1:
                continue
            c, r = (int(np.floor(v)) for v in inverse * (geom.x, geom.y))
            if 0 <= r < water.shape[0] and 0 <= c < water.shape[1] and labels[r, c]:
                body |= labels == labels[r, c]
        else:
            x0, y0, x1, y1 = geom.bounds
            c0, r1 = (int(np.floor(v)) for v in inverse * (x0, y0))
            c1, r0 = (int(np.ceil(v)) for v in inverse * (x1, y1))
            inside = np.zeros_like(water)
            inside[max(r0, 0) : r1, max(c0, 0) : c1] = True
            body |= water & inside
    return bodies


def score(case: dict) -> dict:
    """Scene IoU, false pixels and per-object IoU of one finished case."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize

    water, valid = _truth(case)
    with rasterio.open(case["mask"]) as ds:
        pred = ds.read(1)
        transform = ds.transform
    valid = valid & (pred != 255)
    p, g = (pred == 1) & valid, water & valid
    iou = float((p & g).sum() / max((p | g).sum(), 1))
    objects = []
    bodies = _object_bodies(case, water, transform)
    if bodies:
        polys = gpd.read_file(case["polygons"], layer="flood")
        for obj, body in bodies.items():
            shapes = list(polys.geometry[polys["object_id"] == obj])
            mine = (rasterize(shapes, out_shape=pred.shape, transform=transform) > 0
                    if shapes else np.zeros_like(body))
            mine, body = mine & valid, body & valid
            objects.append(float((mine & body).sum() / max((mine | body).sum(), 1)))
    ceiling = None
    if bodies:  # a map that is exactly the truth bodies the prompts point at
        clicked = np.any(list(bodies.values()), axis=0) & valid
        ceiling = float(clicked.sum() / max(g.sum(), 1))
    return {"iou": iou, "false_px": int((p & ~g).sum()),
            "object_iou": float(np.mean(objects)) if objects else None, "ceiling": ceiling}


# --------------------------------------------------------------------------- pictures
def render(case: dict, runs: dict[str, dict], png: Path, width: int = 1200) -> None:
    """The image, then each version's mask over it (blue: water in both, red: false water,
    yellow: missed water), the clicks as green rings; side by side, into ``png``."""
    import rasterio
    from PIL import Image, ImageDraw

    with rasterio.open(case["image"]) as ds:
        rgb = ds.read([1, 2, 3]).transpose(1, 2, 0).astype(np.float32)
        inverse = ~ds.transform
    low, high = np.percentile(rgb, [2, 98])
    rgb = np.clip((rgb - low) / max(high - low, 1e-6) * 255, 0, 255)
    water, _ = _truth(case)
    panels = [rgb]
    for run in runs.values():
        with rasterio.open(run["mask"]) as ds:
            mask = ds.read(1) == 1
        over = rgb * 0.6
        over[mask & water] = (40, 90, 255)
        over[mask & ~water] = (255, 30, 30)
        over[~mask & water] = (255, 230, 0)
        panels.append(over)
    image = Image.fromarray(np.concatenate(panels, axis=1).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if case["prompts"] is not None:
        import geopandas as gpd

        for geom in gpd.read_file(case["prompts"]).geometry:
            if geom.geom_type != "Point":
                continue
            x, y = inverse * (geom.x, geom.y)
            for k in range(len(panels)):
                x0 = x + k * rgb.shape[1]
                draw.ellipse([x0 - 6, y - 6, x0 + 6, y + 6], outline=(0, 255, 0), width=3)
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)))
    png.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128).save(png, optimize=True)


# --------------------------------------------------------------------------- main
def _version(code: Path, cases: list[dict], out: Path) -> list[dict]:
    """Run the cases with the geofloodsam of ``code`` in a fresh process."""
    spec = out / "cases.json"
    out.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run([sys.executable, __file__, "--worker", str(spec)], env=env, check=True)
    return json.loads((out / "done.json").read_text())


def main(argv: list[str] | None = None) -> int:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="samples,generated,esw,chips")
    ap.add_argument("--before", help="a checkout of the code to compare with (e.g. ../main)")
    ap.add_argument("--data", default=str(DATA), help="the shared data folder")
    ap.add_argument("--only", help="comma-separated scene names to keep")
    ap.add_argument("--decoder", help="the decoder of every prompted case (default: by sensor)")
    ap.add_argument("--no-promptless", action="store_true", help="skip the promptless cases")
    ap.add_argument("--clicked-only", action="store_true",
                    help="prompted cases map the clicked bodies alone (no water alike)")
    ap.add_argument("--keep", help="a folder to keep the scenes and outputs in (default: a "
                    "temporary one, removed at the end)")
    ap.add_argument("--png-dir", help="render each prompted case of --only's scenes here: the "
                    "image, then each version's mask over it")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    DATA = Path(args.data)
    if args.worker:
        spec = Path(args.worker)
        done = run_cases(json.loads(spec.read_text()), spec.parent)
        (spec.parent / "done.json").write_text(json.dumps(done))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        cases = [c for name in args.sets.split(",") for c in SETS[name](work)]
        if args.only:
            cases = [c for c in cases if c["name"].split(" ")[0] in args.only.split(",")]
        if args.no_promptless:
            cases = [c for c in cases if c["prompts"] is not None]
        if args.decoder:
            cases = [{**c, "decoder": args.decoder} for c in cases]
        if args.clicked_only:
            cases = [{**c, "clicked_only": c["prompts"] is not None} for c in cases]
        versions = {"new": REPO}
        if args.before:
            versions = {"before": Path(args.before).resolve(), **versions}
        # every version runs every case: promptless runs take no prompt path, but the shipped
        # models (and so the promptless maps) may differ between versions
        results = {v: _version(code, cases, work / v) for v, code in versions.items()}
        print("| set | case | " + " | ".join(
            f"{v} IoU | {v} false px | {v} object IoU | {v} tiles | {v} s" for v in versions)
            + " |")
        print("|---|---|" + "---|" * 5 * len(versions))
        per_set: dict[tuple[str, str], list[float]] = {}
        for k, case in enumerate(cases):
            cells = []
            for v in versions:
                run = results[v][k]
                s = score(run)
                per_set.setdefault((v, _set_of(case)), []).append(s["iou"])
                if s["ceiling"] is not None and v == "new":
                    per_set.setdefault(("ceiling", _set_of(case)), []).append(s["ceiling"])
                obj = "-" if s["object_iou"] is None else f"{s['object_iou']:.3f}"
                cells.append(f"{s['iou']:.3f} | {s['false_px']} | {obj} | "
                             f"{run['tiles_encoded']} | {run['seconds']:.1f}")
            print(f"| {case['set']} | {case['name']} | " + " | ".join(cells) + " |")
            if args.png_dir and args.only and case["prompts"] is not None:
                name = case["name"].replace(" ", "_")
                render(case, {v: results[v][k] for v in versions},
                       Path(args.png_dir) / f"{name}.png")
        print()
        for (v, name), ious in per_set.items():
            print(f"{v:7s} {name:28s} mean IoU {np.mean(ious):.3f} over {len(ious)}")
    return 0


def _set_of(case: dict) -> str:
    return case["set"] + (" promptless" if case["prompts"] is None else " prompted")


if __name__ == "__main__":
    sys.exit(main())
