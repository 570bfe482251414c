"""Random training prompts sampled from a ground-truth water mask.

Training works in SAM's low-resolution frame: the mask decoder predicts 256x256 logits over
the padded 1024x1024 model input, so the truth is brought into that frame once per image
(:func:`lowres_truth`) and prompts are drawn there, then converted to the pixel coordinates
of the image given to the encoder (what ``model.prompt_tensors`` expects).

Prompt kinds (each step draws ``n`` prompts of one kind for one image):

* ``point``: one positive point inside water, away from its border (sometimes the deepest
  point of the largest water body, the default evaluation prompt); decoded with 3 masks;
* ``points``: 1-3 positive points and 0-2 negative points (dry, away from the water);
* ``box``: a box around all the water, jittered (sometimes exact, the evaluation prompt);
* ``region``: a jittered box around one connected water region; its target is the water
  inside that region's box;
* ``whole``: the whole-image box ``[0, 0, W, H]``, the prompt of ``segment``'s promptless mode.

Every kind but ``region`` targets all the water of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from geofloodsam.datasets.truth_prompts import default_prompts
from geofloodsam.geo import transforms
from geofloodsam.vector.prompts import NO_PROMPT

KINDS = ("point", "points", "box", "region", NO_PROMPT)
LOWRES = 256
#: probability of drawing the exact default evaluation prompt (no jitter) for box / point
EXACT_PROB = 0.25
#: box jitter: each edge moves by N(0, JITTER * side), at most MAX_JITTER_MODEL model px
JITTER = 0.1
MAX_JITTER_MODEL = 40.0


@dataclass
class LowResTruth:
    """The truth of one image in the 256x256 low-resolution frame (cropped to the image)."""

    water: np.ndarray  # (h, w) float32: fraction of water per cell (soft target)
    valid: np.ndarray  # (h, w) bool: cells that count in the loss
    original_size: tuple[int, int]  # (H, W) of the encoded image
    input_size: tuple[int, int]  # (h', w') of the image resized into the 1024 frame
    eval_box: list[float] | None  # default evaluation box (pixels, full resolution)
    eval_point: list[float] | None  # default evaluation point (pixels, full resolution)
    image_size: int = 1024
    mask: np.ndarray = field(init=False, repr=False)
    inside: np.ndarray = field(init=False, repr=False)
    outside: np.ndarray = field(init=False, repr=False)
    labels: np.ndarray = field(init=False, repr=False)
    regions: list[tuple[int, int, int, int, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.mask = (self.water > 0.5) & self.valid
        self.inside = ndimage.distance_transform_edt(np.pad(self.mask, 1))[1:-1, 1:-1]
        self.outside = ndimage.distance_transform_edt(~self.mask)
        self.labels, n = ndimage.label(self.mask, structure=np.ones((3, 3), dtype=bool))
        self.regions = []
        for i, sl in enumerate(ndimage.find_objects(self.labels), start=1):
            area = int(np.count_nonzero(self.labels[sl] == i))
            self.regions.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop, area))

    @property
    def has_water(self) -> bool:
        """True if some valid cell is water."""
        return bool(self.mask.any())

    # ---------------------------------------------------------------- frames
    def to_pixels(self, xy_lowres: np.ndarray) -> np.ndarray:
        """Low-resolution x/y coordinates -> pixel coordinates of the encoded image."""
        scale = self.image_size / LOWRES
        return transforms.model_to_pixel(
            np.asarray(xy_lowres, dtype=np.float64) * scale, self.original_size, self.image_size
        )

    def box_to_pixels(self, box: np.ndarray) -> np.ndarray:
        """(N, 4) low-resolution boxes -> pixel boxes clipped to the image."""
        px = self.to_pixels(np.asarray(box, dtype=np.float64).reshape(-1, 2, 2)).reshape(-1, 4)
        h, w = self.original_size
        px[:, [0, 2]] = px[:, [0, 2]].clip(0, w)
        px[:, [1, 3]] = px[:, [1, 3]].clip(0, h)
        return px


def lowres_truth(
    water: np.ndarray, valid: np.ndarray, image_size: int = 1024, eval_prompts: bool = True
) -> LowResTruth:
    """Bring a full-resolution truth (water, valid) into the low-resolution decoder frame.

    ``eval_prompts=False`` skips the default evaluation prompts (a distance transform of the
    full-resolution mask), which crop training does not use.
    """
    water = np.asarray(water, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    h, w = water.shape
    ih, iw = transforms.resized_size((h, w), image_size)
    stack = torch.from_numpy(np.stack([water & valid, valid]).astype(np.float32))[None]
    resized = F.interpolate(stack, (ih, iw), mode="area")
    padded = F.pad(resized, (0, image_size - iw, 0, image_size - ih))
    pooled = F.avg_pool2d(padded, image_size // LOWRES)[0]
    lh, lw = -(-ih * LOWRES // image_size), -(-iw * LOWRES // image_size)
    wat, val = pooled[0, :lh, :lw].numpy(), pooled[1, :lh, :lw].numpy()
    cell_valid = val >= 0.5
    frac = np.where(val > 0, wat / np.maximum(val, 1e-6), 0.0).astype(np.float32)
    empty = {"box": {"box": None}, "point": {"points": []}}
    prompts = default_prompts(water & valid) if eval_prompts else empty
    point = prompts["point"]["points"]
    return LowResTruth(
        water=frac,
        valid=cell_valid,
        original_size=(h, w),
        input_size=(ih, iw),
        eval_box=prompts["box"]["box"],
        eval_point=point[0] if point else None,
        image_size=image_size,
    )


@dataclass
class PromptBatch:
    """``n`` prompts of one kind for one image, in pixel coordinates, with their targets."""

    kind: str
    points: np.ndarray | None  # (n, K, 2)
    labels: np.ndarray | None  # (n, K) 1 positive, 0 negative
    boxes: np.ndarray | None  # (n, 4)
    targets: np.ndarray  # (n, h, w) float32 low-resolution targets
    multimask: bool = False

    def __len__(self) -> int:
        return len(self.targets)


def sample_prompts(truth: LowResTruth, kind: str, n: int, rng: np.random.Generator) -> PromptBatch:
    """Draw ``n`` prompts of ``kind`` (falls back to the whole-image box for an image without
    water)."""
    if not truth.has_water and kind != NO_PROMPT:
        kind = NO_PROMPT
    if kind == NO_PROMPT:
        h, w = truth.original_size
        boxes = np.array([[0.0, 0.0, float(w), float(h)]])
        return PromptBatch(NO_PROMPT, None, None, boxes, truth.water[None].copy())
    if kind == "point":
        pts = np.stack([_point(truth, rng) for _ in range(n)])[:, None]
        labels = np.ones((n, 1))
        return PromptBatch("point", pts, labels, None, _all_water(truth, n), multimask=True)
    if kind == "points":
        return _points(truth, n, rng)
    if kind == "box":
        boxes = np.stack([_water_box(truth, rng) for _ in range(n)])
        return PromptBatch("box", None, None, boxes, _all_water(truth, n))
    if kind == "region":
        return _regions(truth, n, rng)
    raise ValueError(f"unknown prompt kind {kind!r}")


# ---------------------------------------------------------------------------- kinds
def _all_water(truth: LowResTruth, n: int) -> np.ndarray:
    return np.repeat(truth.water[None], n, axis=0)


def _pick_region(truth: LowResTruth, rng: np.random.Generator) -> int:
    """A region label, the largest half of the time, else weighted by area."""
    areas = np.array([r[4] for r in truth.regions], dtype=np.float64)
    if rng.random() < 0.5:
        return int(np.argmax(areas)) + 1
    return int(rng.choice(len(areas), p=areas / areas.sum())) + 1


def _point(truth: LowResTruth, rng: np.random.Generator) -> np.ndarray:
    """One positive point (pixels) inside water, away from its border."""
    if truth.eval_point is not None and rng.random() < EXACT_PROB:
        return np.asarray(truth.eval_point, dtype=np.float64)
    region = truth.labels == _pick_region(truth, rng)
    depth = np.where(region, truth.inside, 0.0)
    cand = np.flatnonzero(depth >= max(1.0, 0.3 * depth.max()))
    idx = int(rng.choice(cand))
    row, col = divmod(idx, truth.mask.shape[1])
    return truth.to_pixels(np.array([col + rng.random(), row + rng.random()]))


def _negative(truth: LowResTruth, rng: np.random.Generator) -> np.ndarray | None:
    cand = np.flatnonzero(((truth.outside >= 2) & truth.valid).ravel())
    if cand.size == 0:
        return None
    row, col = divmod(int(rng.choice(cand)), truth.mask.shape[1])
    return truth.to_pixels(np.array([col + rng.random(), row + rng.random()]))


def _points(truth: LowResTruth, n: int, rng: np.random.Generator) -> PromptBatch:
    n_pos, n_neg = int(rng.integers(1, 4)), int(rng.integers(0, 3))
    pts = np.zeros((n, n_pos + n_neg, 2))
    labels = np.full((n, n_pos + n_neg), -1.0)
    for i in range(n):
        for k in range(n_pos):
            pts[i, k], labels[i, k] = _point(truth, rng), 1
        for k in range(n_pos, n_pos + n_neg):
            neg = _negative(truth, rng)
            if neg is not None:
                pts[i, k], labels[i, k] = neg, 0
    return PromptBatch("points", pts, labels, None, _all_water(truth, n))


def _jitter(box: np.ndarray, rng: np.random.Generator, limit: tuple[int, int]) -> np.ndarray:
    """Move each edge of a low-resolution box by bounded Gaussian noise."""
    side = np.array([box[2] - box[0], box[3] - box[1]] * 2, dtype=np.float64)
    cap = MAX_JITTER_MODEL * LOWRES / 1024.0
    noise = np.clip(rng.normal(0.0, 1.0, 4) * JITTER * side, -cap, cap)
    out = box + noise
    h, w = limit
    x0, x1 = np.clip(sorted((out[0], out[2])), 0, w)
    y0, y1 = np.clip(sorted((out[1], out[3])), 0, h)
    return np.array([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)])


def _water_box(truth: LowResTruth, rng: np.random.Generator) -> np.ndarray:
    """Pixel box around all water: exact (evaluation box) or jittered."""
    if truth.eval_box is not None and rng.random() < EXACT_PROB:
        return np.asarray(truth.eval_box, dtype=np.float64)
    rows = np.flatnonzero(truth.mask.any(axis=1))
    cols = np.flatnonzero(truth.mask.any(axis=0))
    box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)
    return truth.box_to_pixels(_jitter(box, rng, truth.mask.shape))[0]


def _regions(truth: LowResTruth, n: int, rng: np.random.Generator) -> PromptBatch:
    boxes, targets = [], []
    for _ in range(n):
        x0, y0, x1, y1, _area = truth.regions[_pick_region(truth, rng) - 1]
        target = np.zeros_like(truth.water)
        target[y0:y1, x0:x1] = truth.water[y0:y1, x0:x1]
        box = _jitter(np.array([x0, y0, x1, y1], dtype=np.float64), rng, truth.mask.shape)
        boxes.append(truth.box_to_pixels(box)[0])
        targets.append(target)
    return PromptBatch("region", None, None, np.stack(boxes), np.stack(targets))
