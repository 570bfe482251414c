"""The water alike tried offline: clicked maps joined with promptless water of the clicks' colours.

Reads a ``--keep`` folder of ``benchmarks/prompted_scenes.py --clicked-only`` (each prompted
case's clicked-only mask and its promptless twin's mask) and scores, per scene and per set,
against the scene's exact truth:

* ``clicked``: the clicked bodies alone; ``promptless``: no prompt;
* ``union``: both maps together;
* ``alike SHARE/TOL``: the clicked map plus the 8-connected pieces of the promptless map of
  which at least SHARE has the clicks' colours (their
  :func:`~geofloodsam.segmentation.plan.click_colours`, tolerance at least TOL), as
  ``segment`` does per tile (here over the whole scene at once, without tiles);
* ``no black``: ``alike 0.5/28`` where a pixel within the tolerance of black never counts
  as the clicks' colour.

Then, per scene, where the clicked and the promptless maps miss water: in the truth bodies
(8-connected) a click falls in, and in the others.

::

    python benchmarks/prompted_scenes.py --sets esw,esw-train --clicked-only --keep /tmp/kc
    python benchmarks/alike_offline.py /tmp/kc
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from geofloodsam.raster.scene import Scene, compute_stretch
from geofloodsam.segmentation.plan import click_colours
from geofloodsam.tiles.growth import Appearance
from geofloodsam.vector.prompts import read_prompts

SHARES = (0.25, 0.5, 0.75)
TOLERANCES = (28.0, 40.0)


def _mask(path: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1) == 1


def _scene_colours(case: dict) -> tuple[np.ndarray, Appearance | None]:
    """The scene's RGB through its stretch (as the tiles see it) and its clicks' colours."""
    with Scene.open(case["image"]) as sc:
        stretch = compute_stretch(sc)
        rgb, _ = sc.read_rgb(Window(0, 0, sc.width, sc.height), stretch)
        prompt_set = read_prompts(case["prompts"], sc.crs, sc.transform, sc.width, sc.height)
        return rgb, click_colours(sc, stretch, prompt_set)


def _alike(pieces: tuple[np.ndarray, np.ndarray], near: np.ndarray, share: float) -> np.ndarray:
    """The pieces (labels, sizes) of which at least ``share`` is ``near``."""
    labels, size = pieces
    good = np.bincount(labels.ravel(), weights=near.ravel(), minlength=len(size))
    keep = good >= share * size
    keep[0] = False
    return keep[labels]


def variants(case: dict, clicked: np.ndarray, promptless: np.ndarray) -> dict[str, np.ndarray]:
    """Every map this benchmark scores, by name."""
    rgb, look = _scene_colours(case)
    out = {"clicked": clicked, "promptless": promptless, "union": clicked | promptless}
    if look is None:
        return out
    labels, n = ndimage.label(promptless & ~clicked, structure=np.ones((3, 3), bool))
    pieces = (labels, np.bincount(labels.ravel(), minlength=n + 1))
    for tol in TOLERANCES:
        near = Appearance(look.colours, max(look.tolerance, tol)).consistent(rgb)
        for share in SHARES:
            out[f"alike {share:g}/{tol:g}"] = clicked | _alike(pieces, near, share)
    near = look.consistent(rgb)
    black = Appearance(np.zeros((1, 3), np.float32), look.tolerance).consistent(rgb)
    out["no black"] = clicked | _alike(pieces, near & ~black, 0.5)
    return out


def _clicked_bodies(case: dict, truth: np.ndarray) -> tuple[np.ndarray, int]:
    """The truth bodies (8-connected) that hold a water click, and the number of bodies."""
    labels, n = ndimage.label(truth, structure=np.ones((3, 3), bool))
    with rasterio.open(case["truth"]) as ds:
        prompt_set = read_prompts(case["prompts"], ds.crs, ds.transform, ds.width, ds.height)
    points = np.concatenate([o.points[o.labels == 1] for o in prompt_set.objects]
                            or [np.zeros((0, 2))])
    hit = labels[points[:, 1].astype(int), points[:, 0].astype(int)]
    return np.isin(labels, hit[hit > 0]), n


def _missed(case: dict, truth: np.ndarray, maps: dict[str, np.ndarray]) -> str:
    """One table row: the missed water of the clicked and promptless maps, split by body."""
    clicked_bodies, n = _clicked_bodies(case, truth)
    cells = [f"{n}"]
    for name in ("clicked", "promptless"):
        miss = truth & ~maps[name]
        cells += [f"{int((miss & clicked_bodies).sum())}", f"{int((miss & ~clicked_bodies).sum())}"]
    return f"| {case['name']} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keep", help="the --keep folder of prompted_scenes.py --clicked-only")
    args = ap.parse_args(argv)
    done = json.loads((Path(args.keep) / "new" / "done.json").read_text())
    twins = {c["name"]: c for c in done if c["prompts"] is None}
    means: dict[tuple[str, str], list[float]] = {}
    header = False
    split = []
    for case in done:
        twin = twins.get(f"{case['name']} promptless")
        if case["prompts"] is None or twin is None:
            continue
        with rasterio.open(case["truth"]) as ds:
            values = ds.read(1)
        truth, valid = values == 1, values != 255  # as prompted_scenes.py scores
        maps = variants(case, _mask(case["mask"]), _mask(twin["mask"]))
        ious = {k: float((m & truth & valid).sum() / max(((m | truth) & valid).sum(), 1))
                for k, m in maps.items()}
        if not header:
            print("| set | scene | " + " | ".join(ious) + " |")
            print("|---|---|" + "---|" * len(ious))
            header = True
        print(f"| {case['set']} | {case['name']} | "
              + " | ".join(f"{v:.3f}" for v in ious.values()) + " |", flush=True)
        for k, v in ious.items():
            means.setdefault((case["set"], k), []).append(v)
        split.append(_missed(case, truth & valid, maps))
    print()
    print("| scene | truth bodies | clicked: missed px in clicked bodies | in the others "
          "| promptless: in clicked bodies | in the others |")
    print("|---|---|---|---|---|---|")
    print("\n".join(split))
    print()
    for (name, variant), values in means.items():
        print(f"{name:10s} {variant:14s} mean IoU {np.mean(values):.3f} over {len(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
