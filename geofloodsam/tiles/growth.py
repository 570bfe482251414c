"""How a prompted object grows: candidate choice, the evidence it follows, seeds into neighbours.

A point object is one water body. In the tile it was clicked in, and in every tile it is
carried into, SAM returns three candidate masks; the one kept is the one consistent with the
evidence at the clicks, not the one with the highest predicted IoU:

* the object's **appearance** (:class:`Appearance`): the colours around the user's positive
  points, taken once in the clicked tile and carried with the object into its neighbours;
* a candidate is **consistent** when at least :data:`MIN_CONSISTENT` of its water connected
  to the object's points has one of those colours; among consistent candidates the one with
  the most consistent water minus inconsistent water wins (ties: predicted IoU).

Growth into a neighbour follows only the water that is both SAM's and of the object's
colours (:func:`evidence_water`), so a candidate that spills into dry fields cannot carry the
object there: seeds are placed (:func:`edge_seeds`) in that water where it crosses the
overlap strip. A carried seed's probability is cut to its connected water dilated by
:data:`CARRIED_CUT_PIXELS`.

In a tile, each seed's probability is cropped to where it is above the floor
(:func:`crop_seed`) and a growing seed hands back its water connected to its points
(:func:`connected_water`); a click inside water its tile already mapped is not decoded again
(:func:`covered`). Across tiles, water that reaches an edge shared with a neighbour
(:func:`reaches_edge`) seeds it (:func:`grow_seeds`, merged per object by :func:`add_seed`),
and :class:`Reach` admits the seeds of the next wave: not inside the object's own water, at
most :data:`MAX_VISITS` times per tile, at most ``max_object_tiles`` tiles per object.

On plain RGB (no water index) the tile's **promptless map** is evidence too: each tile a
point object is decoded in is also decoded once with the whole-tile box (the prompt of a
promptless run, on the same embedding: no extra encode). A click that falls in (or within
:data:`PROMPTLESS_REACH_PIXELS` of) that map's water keeps the promptless water body it
falls in (:func:`promptless_body`) unless it floods the tile with other colours
(:func:`of_its_colour`) and SAM's candidates at the click disagree with it
(:func:`candidates_agree`), with the promptless soft edge
:data:`PROMPTLESS_EDGE_PIXELS` around it, and grows along it into neighbours. Otherwise (a
click on promptless-dry land, a body of other colours, a negative point in the body) the
candidate choice above decides, among the candidates that cover at most
:data:`MAX_FALLBACK_SHARE` of the tile.

A click also says what water looks like in its scene. On plain RGB every tile is decoded
once more for the **water alike** (:func:`alike_water`): the tile's promptless water, piece
by piece, where at least :data:`MIN_CONSISTENT` of a piece has the colours of the scene's
clicks (their :class:`Appearance`, taken when the run is planned) and no negative point lies
in it. So a scene of a hundred lakes needs a click on one of them, while a field that SAM's
promptless map calls water but that does not look like the clicked water stays dry.
``--clicked-only`` maps the clicked bodies alone.

A user's box is decoded with its centre as a water point (a box is drawn around its water
body) and three candidates (:func:`choose_box_candidate`): the kept one is the candidate that
stays inside the box (little water on its border ring), then the highest predicted IoU.

Every number of these rules is a named constant here. Their values were chosen on the
project's synthetic scenes and the Earth Surface Water *train* split, never on the scenes
the benchmarks report (``benchmarks/prompted_scenes.py``, ``docs/results.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from geofloodsam.geo.boxes import Box
from geofloodsam.model.logits import sigmoid
from geofloodsam.tiles.tasks import EMPTY, Crop, Seed, tile_local

if TYPE_CHECKING:
    from geofloodsam.tiles.engine import ObjectInfo
    from geofloodsam.tiles.grid import Tile, TileGrid
    from geofloodsam.tiles.store import TileStore

#: seeds per object and neighbour tile (at most two per water component crossing the edge)
MAX_SEEDS = 4
#: positive points one carried seed holds after merging seeds of the same object
MAX_CARRIED_POINTS = 2 * MAX_SEEDS
#: water components smaller than this (pixels, inside the overlap strip) seed nothing
MIN_SEED_PIXELS = 8
#: a component's deepest pixel is a second seed when this far (px) from the edge seed
FAR_SEED_PIXELS = 32
#: a carried seed's probability is cut to its connected water dilated by this many pixels
CARRIED_CUT_PIXELS = 2
#: the object's reference colours: pixels within this radius (px) of each positive click
REFERENCE_RADIUS = 3
#: a colour is the object's when within this distance (uint8 RGB units) of a reference ...
COLOUR_TOLERANCE = 28.0
#: ... or within this many times the references' own spread, when that is larger
SPREAD_TOLERANCE = 3.0
#: a candidate is consistent when at least this share of its seed-connected water is the
#: object's colour
MIN_CONSISTENT = 0.5
#: a click's promptless water body keeps the promptless soft edge this far (px) around it
PROMPTLESS_EDGE_PIXELS = 3
#: a click on dry land this close (px) to promptless water takes the body it is beside
PROMPTLESS_REACH_PIXELS = 8
#: promptless water this close (px) to a click's promptless body is part of it: a river and
#: the lakes it joins through channels the promptless map breaks (gaps of up to twice this).
#: The value of the index sensors' ``JOIN_GAP_PIXELS``, set without a search
PROMPTLESS_JOIN_PIXELS = 8
#: with promptless evidence, a click on promptless-dry land keeps no candidate whose water
#: covers more than this share of the tile (the whole-tile masks that grow as rectangles)
MAX_FALLBACK_SHARE = 0.5
#: ... unless, for a user's click, at least this share of the candidate is promptless water
#: too (and half of it the click's colour): the lake whose middle the promptless map missed
MIN_PROMPTLESS_SUPPORT = 0.25
#: a tile-flooding promptless body not of the object's colour is still the object's when
#: each of SAM's candidates at its points is this close to it (IoU): both decodes agree
MIN_CANDIDATE_AGREEMENT = 0.8
#: a box candidate stays inside its box when at most this share of the box's border ring is
#: water
MAX_BOX_BORDER_WATER = 0.25
#: the border ring of a box: this share of its smaller side (at least 1 px)
BOX_RING = 0.04


# --------------------------------------------------------------------------- appearance
@dataclass
class Appearance:
    """An object's reference colours (K, 3) and the distance within which a colour is its."""

    colours: np.ndarray
    tolerance: float

    @classmethod
    def at(cls, rgb: np.ndarray, points: np.ndarray) -> Appearance | None:
        """The colours of ``rgb`` (h, w, 3) around tile-local ``points`` (x, y); None if none."""
        h, w = rgb.shape[:2]
        patches = []
        for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
            c, r = int(np.floor(x)), int(np.floor(y))
            if not (0 <= c < w and 0 <= r < h):
                continue
            rs = slice(max(r - REFERENCE_RADIUS, 0), r + REFERENCE_RADIUS + 1)
            cs = slice(max(c - REFERENCE_RADIUS, 0), c + REFERENCE_RADIUS + 1)
            patches.append(rgb[rs, cs].reshape(-1, 3).astype(np.float32))
        if not patches:
            return None
        colours = np.array([np.median(p, axis=0) for p in patches], np.float32)
        spread = max(float(np.median(np.abs(p - np.median(p, axis=0)))) for p in patches)
        return cls(colours, max(COLOUR_TOLERANCE, SPREAD_TOLERANCE * 1.4826 * spread))

    def merged(self, other: Appearance | None) -> Appearance:
        """Both appearances' colours, the larger tolerance."""
        if other is None:
            return self
        return Appearance(
            np.concatenate([self.colours, other.colours]), max(self.tolerance, other.tolerance)
        )

    def consistent(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w) bool: the pixels of ``rgb`` (h, w, 3) whose colour is the object's."""
        planes = [rgb[..., b].astype(np.float32) for b in range(3)]
        near = np.zeros(rgb.shape[:2], bool)
        limit = np.float32(self.tolerance**2)
        for colour in np.unique(self.colours.round(1), axis=0):
            dist = (planes[0] - colour[0]) ** 2
            dist += (planes[1] - colour[1]) ** 2
            dist += (planes[2] - colour[2]) ** 2
            near |= dist <= limit
        return near


# --------------------------------------------------------------------------- choice
def choose_point_candidate(
    masks: np.ndarray, iou: np.ndarray, points: np.ndarray, consistent: np.ndarray | None,
    require: bool = False,
) -> int:
    """Index of the candidate (``masks`` (C, h, w) bool) that the evidence at ``points`` backs.

    ``points``: the object's positive points (tile-local x, y); ``consistent``: the pixels of
    the object's colour (None: no appearance known, the highest predicted IoU wins). A
    candidate whose water connected to the points is at least :data:`MIN_CONSISTENT` of the
    object's colour is consistent; the consistent one with the largest consistent minus
    inconsistent water wins. When none is consistent, the one with the largest consistent
    share does, or, with ``require`` (a seed carried into a neighbour: its growth there must
    be justified), none: -1. Ties and the no-evidence case: the highest predicted ``iou``.
    """
    if consistent is None or len(points) == 0 or len(masks) == 1:
        return int(np.argmax(iou))
    scores = []
    for k, mask in enumerate(masks):
        part = connected_water(mask, points, outside=True)
        size = int(part.sum())
        good = int((part & consistent).sum())
        share = good / size if size else 0.0
        net = good - (size - good)
        passed = share >= MIN_CONSISTENT and size > 0
        scores.append((passed, net if passed else share, float(iou[k])))
    best = max(range(len(masks)), key=lambda k: scores[k])
    return -1 if require and not scores[best][0] else best


def promptless_body(
    water: np.ndarray, positives: np.ndarray, negatives: np.ndarray, gap: int = 0,
    colours: tuple[Appearance, np.ndarray] | None = None,
) -> np.ndarray | None:
    """The promptless water body (``water`` (h, w) bool) a point seed's clicks fall in.

    A click on dry land within :data:`PROMPTLESS_REACH_PIXELS` of promptless water takes the
    body nearest to it (the promptless map's edge moves a little from tile to tile, and a
    seed carried from a neighbour may land just outside it). With ``gap`` the body is joined
    to the promptless water it reaches across gaps (:func:`joined_body`: a network of lakes
    and rivers whose channels the map breaks), keeping the pieces of the object's colours
    (``colours``: its appearance and the tile's pixels; every piece when None): a field
    beside a lake stays out, while the lakes it reaches through a river of another colour
    are in.

    None when no positive point lies in ``water``, or a negative point lies in the body
    (the user says the promptless body is not all theirs): the candidate choice decides.
    """
    points = np.asarray(positives, np.float64).reshape(-1, 2)
    body = connected_water(water, points, outside=True)
    if not body.any() and water.any():  # a click beside the water: the body it is beside
        h, w = water.shape
        cols, rows = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
        inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        if inside.any():
            dist, (near_r, near_c) = ndimage.distance_transform_edt(~water, return_indices=True)
            rows, cols = rows[inside], cols[inside]
            close = dist[rows, cols] <= PROMPTLESS_REACH_PIXELS
            points = np.stack([near_c[rows, cols], near_r[rows, cols]], axis=1)[close] + 0.5
            body = connected_water(water, points, outside=True)
    if not body.any():
        return None
    if gap > 0:  # the bodies it reaches across gaps, those of its colours
        body |= _pieces_of_its_colour(joined_body(water, points, gap) & ~body, colours)
    if len(negatives) and connected_water(body, negatives, outside=True).any():
        return None
    return body


def alike_water(
    wet: np.ndarray, look: Appearance, rgb: np.ndarray, negatives: np.ndarray
) -> np.ndarray:
    """The tile's promptless water (``wet`` (h, w) bool) that looks like the scene's clicks.

    The 8-connected pieces of ``wet`` of which at least :data:`MIN_CONSISTENT` has one of
    ``look``'s colours in ``rgb`` (the tile as encoded), less the pieces that hold one of the
    tile-local ``negatives`` (x, y): the user says that water is not theirs.
    """
    alike = _pieces_of_its_colour(wet, (look, rgb))
    if len(negatives):
        alike &= ~connected_water(alike, np.asarray(negatives, np.float64), outside=True)
    return alike


def _pieces_of_its_colour(
    pieces: np.ndarray, colours: tuple[Appearance, np.ndarray] | None
) -> np.ndarray:
    """The 8-connected ``pieces`` of which at least :data:`MIN_CONSISTENT` is of the
    object's colours (``colours``: appearance and pixels; all of them when None)."""
    box = Box.around(pieces)
    if box is None or colours is None:
        return pieces
    look, rgb = colours
    part = pieces[box.slices]
    labels, n = ndimage.label(part, structure=np.ones((3, 3), bool))
    size = np.bincount(labels.ravel(), minlength=n + 1)
    good = np.bincount(labels.ravel(), weights=look.consistent(rgb[box.slices]).ravel(),
                       minlength=n + 1)
    keep = good >= MIN_CONSISTENT * size
    keep[0] = False
    out = np.zeros_like(pieces)
    out[box.slices] = keep[labels]
    return out


def of_its_colour(body: np.ndarray, look: Appearance | None, rgb: np.ndarray | None) -> bool:
    """Whether a promptless ``body`` is evidence for the click: it covers at most
    :data:`MAX_FALLBACK_SHARE` of the tile, or at least :data:`MIN_CONSISTENT` of it has the
    object's colour (True when no colour is known). A tile-flooding body mostly of other
    colours (a decoder that calls the whole tile water) is not."""
    if look is None or rgb is None or body.mean() <= MAX_FALLBACK_SHARE:
        return True
    box = Box.around(body)  # not None: a body that covers over half the tile
    part = body[box.slices]
    good = int((part & look.consistent(rgb[box.slices])).sum())
    return good >= MIN_CONSISTENT * int(part.sum())


def candidates_agree(masks: np.ndarray, points: np.ndarray, body: np.ndarray) -> bool:
    """Whether every candidate (``masks`` (C, h, w)) agrees with a promptless ``body``: the
    candidate's water connected to ``points`` has IoU at least :data:`MIN_CANDIDATE_AGREEMENT`
    with it. SAM's three candidates are its answers to an ambiguous click; when all three
    are the promptless body, the click is unambiguous and two decodes agree (a sea whose
    colour changes from tile to tile). A decoder that calls a whole tile water gives a small
    candidate too, which disagrees."""
    if len(points) == 0 or not body.any():
        return False
    for mask in masks:
        part = connected_water(mask, points, outside=True)
        union = int((part | body).sum())
        if int((part & body).sum()) < MIN_CANDIDATE_AGREEMENT * union:
            return False
    return True


def backed_large_candidates(
    masks: np.ndarray, points: np.ndarray, consistent: np.ndarray | None, wet: np.ndarray
) -> np.ndarray:
    """(C,) bool: the candidates (``masks`` (C, h, w)) both kinds of evidence back, for a
    user's click beside the promptless water: at least :data:`MIN_CONSISTENT` of the water
    connected to ``points`` has the object's colour, and at least
    :data:`MIN_PROMPTLESS_SUPPORT` of it is promptless water (``wet``). A lake whose
    middle the promptless map misses passes; a block of land of the click's colour, where
    the promptless map sees no water, does not. All False when no colour is known."""
    out = np.zeros(len(masks), bool)
    if consistent is None or len(points) == 0:
        return out
    for k, mask in enumerate(masks):
        part = connected_water(mask, points, outside=True)
        size = int(part.sum())
        out[k] = (size > 0 and int((part & consistent).sum()) >= MIN_CONSISTENT * size
                  and int((part & wet).sum()) >= MIN_PROMPTLESS_SUPPORT * size)
    return out


def promptless_logits(evidence: np.ndarray, body: np.ndarray, cut: float) -> np.ndarray:
    """A seed's logits from the promptless ``evidence`` (logits): its ``body``, with the
    soft edge (below ``cut``) :data:`PROMPTLESS_EDGE_PIXELS` around it, nothing elsewhere."""
    near = dilated(body, PROMPTLESS_EDGE_PIXELS)
    edge = np.where(near, np.minimum(evidence, cut), np.float32(-100.0))
    return np.where(body, evidence, edge).astype(np.float32)


def choose_box_candidate(masks: np.ndarray, iou: np.ndarray, box: Box) -> int:
    """Index of the box candidate (``masks`` (C, h, w) bool) that stays inside ``box``.

    A candidate with water inside the box whose water covers at most
    :data:`MAX_BOX_BORDER_WATER` of the box's border ring (:data:`BOX_RING` of its smaller
    side) is inside; among those the highest predicted ``iou`` wins; when none is, the one
    with the least water on the ring.
    """
    if len(masks) == 1:
        return 0
    h, w = masks.shape[1:]
    x0, y0, x1, y1 = box
    c0, r0 = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.floor(y0), 0, h - 1))
    c1, r1 = int(np.clip(np.ceil(x1), c0 + 1, w)), int(np.clip(np.ceil(y1), r0 + 1, h))
    ring = max(1, int(BOX_RING * min(c1 - c0, r1 - r0)))
    inner = np.zeros((r1 - r0, c1 - c0), bool)
    inner[ring:-ring, ring:-ring] = True
    scores = []
    for k, mask in enumerate(masks):
        crop = mask[r0:r1, c0:c1]
        border = crop[~inner]
        on_ring = float(border.mean()) if border.size else 0.0
        inside = crop[inner].any() if inner.any() else crop.any()
        passed = bool(inside) and on_ring <= MAX_BOX_BORDER_WATER
        scores.append((passed, float(iou[k]) if passed else -on_ring))
    return max(range(len(masks)), key=lambda k: scores[k])


def evidence_water(water: np.ndarray, consistent: np.ndarray | None) -> np.ndarray:
    """The water growth may follow: SAM's water that is also of the object's colour."""
    return water if consistent is None else water & consistent


# --------------------------------------------------------------------------- seeds
def _oriented(water: np.ndarray, side: str) -> np.ndarray:
    """A view of ``water`` turned so that the edge on ``side`` is the last column."""
    return {
        "right": water,
        "left": water[:, ::-1],
        "bottom": water.T,
        "top": water[::-1].T,
    }[side]


def _unorient(rows: np.ndarray, cols: np.ndarray, side: str, shape: tuple[int, int]):
    """Map (row, col) of :func:`_oriented`'s view back to (row, col) of the tile."""
    h, w = shape
    if side == "right":
        return rows, cols
    if side == "left":
        return rows, w - 1 - cols
    if side == "bottom":
        return cols, rows
    return h - 1 - cols, rows


def _overlap_width(tile, side: str, neighbour) -> int:
    return {
        "right": tile.x1 - neighbour.x0,
        "left": neighbour.x1 - tile.x0,
        "bottom": tile.y1 - neighbour.y0,
        "top": neighbour.y1 - tile.y0,
    }[side]


def edge_seeds(water: np.ndarray, tile, side: str, neighbour) -> np.ndarray:
    """Full-raster points seeding ``neighbour`` from an object's evidence water in ``tile``.

    ``water`` is the (h, w) water the object may grow along (:func:`evidence_water`) in
    ``tile``. Nothing unless it reaches the tile's edge on ``side``. Each water component of
    the overlap strip shared with the neighbour that touches that edge (largest first, at
    most ``MAX_SEEDS // 2``) gives the deepest pixel of its half of the strip nearest the
    edge (where the object leaves the tile) and, when more than :data:`FAR_SEED_PIXELS` from
    it, the deepest pixel of the whole component. Without overlap the edge column (row) is
    the strip and seeds move one pixel across into the neighbour.
    """
    view = _oriented(water, side)
    width = _overlap_width(tile, side, neighbour)
    across = width <= 0
    width = min(max(width, 1), view.shape[1])
    strip = view[:, view.shape[1] - width :]
    if not strip[:, -1].any():
        return np.zeros((0, 2))
    labels, _ = ndimage.label(strip, structure=np.ones((3, 3), bool))
    touching = np.unique(labels[:, -1])
    touching = touching[touching > 0]
    sizes = np.bincount(labels.ravel())[touching]
    order = np.argsort(-sizes, kind="stable")
    ranked = [int(touching[i]) for i in order if sizes[i] >= MIN_SEED_PIXELS]
    far = np.zeros(strip.shape, bool)
    far[:, width - max(1, width // 2) :] = True
    rows, cols = [], []
    pad = 1 if width > 1 else ((1, 1), (0, 0))  # a 1-px strip: its run's middle
    boxes = ndimage.find_objects(labels)
    for label in ranked[: MAX_SEEDS // 2]:
        # The distance transform over the component's bounding box only: outside it the
        # strip is dry, so the distances (and the first maxima) are those of the whole strip.
        rs, cs = boxes[label - 1]
        region = labels[rs, cs] == label
        dist = ndimage.distance_transform_edt(np.pad(region, pad))
        dist = dist[1:-1, 1:-1] if width > 1 else dist[1:-1]
        r1, c1 = np.unravel_index(int(np.argmax(np.where(far[rs, cs], dist, 0))), dist.shape)
        r2, c2 = np.unravel_index(int(np.argmax(dist)), dist.shape)
        r1, r2, c1, c2 = r1 + rs.start, r2 + rs.start, c1 + cs.start, c2 + cs.start
        rows.append(r1)
        cols.append(c1)
        if np.hypot(r2 - r1, c2 - c1) > FAR_SEED_PIXELS:
            rows.append(r2)
            cols.append(c2)
    r, c = np.array(rows), np.array(cols) + view.shape[1] - width
    r, c = _unorient(r, c, side, water.shape)
    x = tile.x0 + c + 0.5
    y = tile.y0 + r + 0.5
    if across:
        step = {"right": (1, 0), "left": (-1, 0), "bottom": (0, 1), "top": (0, -1)}[side]
        x, y = x + step[0], y + step[1]
    pts = np.column_stack([x, y]).astype(np.float64).reshape(-1, 2)
    inside = np.array([neighbour.contains(px, py) for px, py in pts], dtype=bool)
    return pts[inside] if len(pts) else pts


def dilated(water: np.ndarray, pixels: int = CARRIED_CUT_PIXELS) -> np.ndarray:
    """``water`` dilated by ``pixels`` (4-connected steps), computed around the water only."""
    near = np.zeros_like(water)
    boxes = ndimage.find_objects(water.astype(np.uint8))
    if not boxes:
        return near
    rows, cols = boxes[0]
    r0, r1 = max(rows.start - pixels, 0), rows.stop + pixels
    c0, c1 = max(cols.start - pixels, 0), cols.stop + pixels
    near[r0:r1, c0:c1] = ndimage.binary_dilation(water[r0:r1, c0:c1], iterations=pixels)
    return near


# --------------------------------------------------------------------------- in a tile
def connected_water(water: np.ndarray, points: np.ndarray, outside: bool = False) -> np.ndarray:
    """The 8-connected components of ``water`` that hold one of the tile-local ``points``.

    Points beyond ``water``'s extent are clipped to its edge or, with ``outside`` (``water``
    is a crop whose surroundings are dry), hold nothing.
    """
    if len(points) == 0 or not water.any():
        return np.zeros_like(water, dtype=bool)
    h, w = water.shape
    cols = np.floor(points[:, 0]).astype(int)
    rows = np.floor(points[:, 1]).astype(int)
    if outside:
        inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        cols, rows = cols[inside], rows[inside]
        if cols.size == 0:
            return np.zeros_like(water, dtype=bool)
    labels, _ = ndimage.label(water, structure=np.ones((3, 3), bool))
    cols = np.clip(cols, 0, w - 1)
    rows = np.clip(rows, 0, h - 1)
    keep = np.zeros(labels.max() + 1, bool)
    keep[labels[rows, cols]] = True
    keep[0] = False
    return keep[labels]


def joined_body(water: np.ndarray, points: np.ndarray, gap: int) -> np.ndarray:
    """The ``water`` connected to ``points`` across gaps: within ``gap`` px of each other.

    ``gap`` 0 is the 8-connected components that hold a point; otherwise the components of
    ``water`` grown by ``gap`` px (Euclidean) that hold a point, cut back to ``water``.
    """
    if gap <= 0 or not water.any():
        return connected_water(water, points, outside=True)
    near = ndimage.distance_transform_edt(~water) <= gap
    return connected_water(near, points, outside=True) & water


def covered(seed: Seed, mapped: np.ndarray) -> bool:
    """Whether a point seed with water points only lies wholly in already mapped water."""
    if seed.box is not None or seed.points is None or len(seed.points) == 0 or seed.carried:
        return False  # a carried seed is never dropped for another object's water
    if (seed.labels != 1).any():
        return False  # negatives say something the mapped water may not respect
    h, w = mapped.shape
    cols = np.floor(seed.points[:, 0]).astype(int)
    rows = np.floor(seed.points[:, 1]).astype(int)
    if ((cols < 0) | (cols >= w) | (rows < 0) | (rows >= h)).any():
        return False
    return bool(mapped[rows, cols].all())


def crop_seed(
    logits: np.ndarray, seed: Seed, logit_floor: float, floor: float, threshold: float,
    colours: tuple[Appearance, np.ndarray] | None = None, gap: int = 0,
) -> tuple[Crop, Crop | None]:
    """One seed's (h, w) logits -> its probability crop and, if it grows, its connected water.

    The crop holds every pixel whose probability exceeds ``floor``. The connected water
    handed back for growth is the part of the object's colours (``colours``: its appearance
    and the tile's pixels; None: all of it). The probability is then cut to the water growth
    may follow (dilated by :data:`CARRIED_CUT_PIXELS`) and cropped again, for a carried seed
    and for a seed with colours: an object's map ends where its evidence ends, never on a
    tile edge its growth could not cross (the straight, tile-aligned cut of a field whose
    colour changes before the edge). ``gap``: the water is joined across gaps of this many
    px (:func:`joined_body`; a promptless body joined so).
    """
    nothing = Crop(0, 0, EMPTY), (Crop(0, 0, np.zeros((0, 0), bool)) if seed.propagate else None)
    box = Box.around(logits > logit_floor - 0.01)  # a margin for rounding: then exact, on it
    if box is None:
        return nothing
    prob = sigmoid(logits[box.slices])
    inner = Box.around(prob > floor)  # what a whole-tile sigmoid would have kept, exactly
    if inner is None:
        return nothing
    prob = prob[inner.slices]
    r0, c0 = box.y0 + inner.y0, box.x0 + inner.x0
    if not seed.propagate:
        return Crop(r0, c0, prob.astype(np.float16)), None
    local = seed.points[seed.labels == 1] - np.array([c0, r0], dtype=np.float64)
    water = joined_body(prob > threshold, local, gap)
    if colours is not None:  # growth follows the water of the object's colours only
        look, rgb = colours
        here = look.consistent(rgb[r0 : r0 + water.shape[0], c0 : c0 + water.shape[1]])
        water = connected_water(evidence_water(water, here), local, outside=True)
    if seed.carried or colours is not None:  # the object is the water it may grow along
        keep = water if colours is not None else joined_body(prob > threshold, local, gap)
        prob[~dilated(keep)] = 0.0
        inner = Box.around(prob > floor)
        if inner is None:
            return Crop(0, 0, EMPTY), Crop(0, 0, np.zeros((0, 0), bool))
        prob, water = prob[inner.slices], water[inner.slices]
        r0, c0 = r0 + inner.y0, c0 + inner.x0
    return Crop(r0, c0, prob.astype(np.float16)), Crop(r0, c0, water)


# --------------------------------------------------------------------------- across tiles
#: the same object decodes the same tile at most this many times (a lake that comes back)
MAX_VISITS = 3


def reaches_edge(water: Crop, tile: Tile, sides: dict) -> bool:
    """Whether a water crop touches an edge of ``tile`` on a side that has a neighbour."""
    if water.data.size == 0 or not water.data.any():
        return False
    h, w = tile.height, tile.width
    return (
        ("top" in sides and water.r0 == 0 and water.data[0].any())
        or ("bottom" in sides and water.r1 == h and water.data[-1].any())
        or ("left" in sides and water.c0 == 0 and water.data[:, 0].any())
        or ("right" in sides and water.c1 == w and water.data[:, -1].any())
    )


def grow_seeds(
    grid: TileGrid, tile: Tile, obj: int, water: np.ndarray, info: ObjectInfo
) -> list[tuple[int, Seed]]:
    """Seeds for the neighbours of ``tile`` that object ``obj``'s ``water`` reaches (``info``:
    the object's negative points and appearance)."""
    grown = []
    negatives = info.negatives
    for side, nb in grid.neighbours(tile).items():
        pts = edge_seeds(water, tile, side, nb)
        if len(pts) == 0:
            continue
        neg = np.array([q for q in negatives if nb.contains(q[0], q[1])]).reshape(-1, 2)
        all_pts = np.concatenate([pts, neg])
        labels = np.array([1] * len(pts) + [0] * len(neg), dtype=np.int64)
        seed = Seed(obj, tile_local(all_pts, nb), labels, propagate=True, carried=True,
                    appearance=info.appearance)
        grown.append((nb.index, seed))
    return grown


def add_seed(pending: dict[int, list[Seed]], index: int, seed: Seed) -> None:
    """Add ``seed`` to a tile's pending seeds, merging points of the same object."""
    for other in pending.setdefault(index, []):
        if other.obj == seed.obj and other.box is None and seed.box is None:
            pos = np.concatenate([other.points[other.labels == 1], seed.points[seed.labels == 1]])
            neg = other.points[other.labels != 1]
            pos = pos[:MAX_CARRIED_POINTS]
            other.points = np.concatenate([pos, neg])
            other.labels = np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
            return
    pending[index].append(seed)


@dataclass
class Reach:
    """Where carried seeds have taken each object, against the caps on its tiles and visits."""

    max_object_tiles: int
    tiles: dict[int, set[int]] = field(default_factory=dict)  # object -> tiles it reached
    visits: dict[tuple[int, int], int] = field(default_factory=dict)  # (object, tile) -> seeds
    capped: set[int] = field(default_factory=set)  # objects the tile cap stopped

    def reached(self, obj: int, index: int) -> None:
        """Object ``obj`` was decoded in tile ``index``."""
        self.tiles.setdefault(obj, set()).add(index)

    def admit(
        self, pending: dict[int, list[Seed]], grid: TileGrid, store: TileStore, threshold: float,
        objects: dict[int, ObjectInfo],
    ) -> dict[int, list[Seed]]:
        """The next wave's seeds: ``pending`` less the seeds already inside the object's own
        water (in ``store``, above ``threshold``), over the visit or tile cap.

        Only the object's own water counts: another object's water over a seed never drops it.
        """
        out: dict[int, list[Seed]] = {}
        for index in sorted(pending):
            tile = grid.tiles[index]
            for seed in pending[index]:
                pos = seed.labels == 1
                full = seed.points + np.array([tile.x0, tile.y0])
                if index in store:
                    own = store.prob_at(tile, full[:, 0], full[:, 1], obj=seed.obj)
                    dry = own <= threshold
                    pos = pos & dry
                if not pos.any():
                    continue
                keep = pos | (seed.labels != 1)
                key = (seed.obj, index)
                tiles = self.tiles.setdefault(seed.obj, set())
                if self.visits.get(key, 0) >= MAX_VISITS:
                    continue
                if index not in tiles and len(tiles) >= self.max_object_tiles:
                    self.capped.add(seed.obj)
                    continue
                self.visits[key] = self.visits.get(key, 0) + 1
                pts, labs = seed.points[keep], seed.labels[keep]
                out.setdefault(index, []).append(
                    Seed(seed.obj, pts, labs, propagate=True, carried=True,
                         appearance=objects[seed.obj].appearance)
                )
        return out
